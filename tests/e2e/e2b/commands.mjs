// Processes through the unmodified SDK: commands.run in the foreground and
// in the background, onStdout/onStderr, exit codes, envs and cwd, stdin,
// kill, list, connect to a running process, timeouts, and PTYs (create,
// sendInput, resize, kill).  Exits non-zero on the first surprise.
import assert from 'node:assert/strict'
import { CommandExitError, Sandbox } from 'e2b'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function until(what, fn, ms = 20_000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const sbx = await Sandbox.create('base', { envs: { FROM_CREATE: 'yes' } })
const out = { sandboxId: sbx.sandboxId }
try {
  // foreground, both streams, the sandbox's environment
  const r = await sbx.commands.run('echo hello; echo oops >&2; echo $FROM_CREATE')
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'hello\nyes\n')
  assert.equal(r.stderr, 'oops\n')

  // envs, cwd, user
  const e = await sbx.commands.run('echo $A-$B; pwd; id -u', { envs: { A: '1', B: 'two words' }, cwd: '/tmp', user: 'root' })
  assert.equal(e.stdout, '1-two words\n/tmp\n0\n')

  // a failing command rejects with its code and output
  await assert.rejects(sbx.commands.run('echo before; exit 3'), (err) => {
    assert.ok(err instanceof CommandExitError)
    assert.equal(err.exitCode, 3)
    assert.equal(err.stdout, 'before\n')
    return true
  })

  // streaming callbacks, in order
  const chunks = []
  const errs = []
  await sbx.commands.run('for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.05; done', {
    onStdout: (d) => chunks.push(d),
    onStderr: (d) => errs.push(d),
  })
  assert.equal(chunks.join(''), 'out1\nout2\nout3\n')
  assert.equal(errs.join(''), 'err1\nerr2\nerr3\n')

  // larger output arrives whole
  const big = await sbx.commands.run('head -c 3000000 /dev/zero | tr "\\0" "x"')
  assert.equal(big.stdout.length, 3_000_000)

  // background: listed, then killed
  const bg = await sbx.commands.run('sleep 300', { background: true })
  assert.ok(bg.pid > 0)
  const listed = await sbx.commands.list()
  const mine = listed.find((p) => p.pid === bg.pid)
  assert.ok(mine, `pid ${bg.pid} not in ${JSON.stringify(listed)}`)
  assert.equal(mine.cmd, '/bin/bash')
  assert.deepEqual(mine.args, ['-l', '-c', 'sleep 300'])
  assert.equal(await bg.kill(), true)
  await assert.rejects(bg.wait(), (err) => err instanceof CommandExitError && err.exitCode !== 0)
  await until('the killed process to leave the list', async () => !(await sbx.commands.list()).some((p) => p.pid === bg.pid))
  assert.equal(await sbx.commands.kill(bg.pid), false) // gone: not found

  // stdin
  const cat = await sbx.commands.run('cat', { background: true, stdin: true })
  await cat.sendStdin('hello stdin\n')
  await sbx.commands.sendStdin(cat.pid, 'second line\n')
  await cat.closeStdin()
  const catRes = await cat.wait()
  assert.equal(catRes.stdout, 'hello stdin\nsecond line\n')

  // a process outlives its client's stream; connect re-attaches to it
  const ticker = await sbx.commands.run('for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.2; done', { background: true })
  await until('the first tick', async () => ticker.stdout.includes('tick1'))
  await ticker.disconnect()
  const again = await sbx.commands.connect(ticker.pid)
  const fin = await again.wait()
  assert.equal(fin.exitCode, 0)
  assert.ok(fin.stdout.includes('tick6'), `after connect: ${JSON.stringify(fin.stdout)}`)

  // the timeout ends the process
  const t0 = Date.now()
  await assert.rejects(sbx.commands.run('sleep 30', { timeoutMs: 700 }))
  assert.ok(Date.now() - t0 < 20_000)

  // a PTY
  const data = []
  const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => data.push(Buffer.from(d)) })
  const text = () => Buffer.concat(data).toString()
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('echo $((6*7))\n'))
  await until('42 on the terminal', async () => text().includes('42'))
  await sbx.pty.resize(term.pid, { cols: 101, rows: 33 })
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'))
  await until('the new size', async () => text().includes('33 101'))
  assert.equal(await sbx.pty.kill(term.pid), true)
  await assert.rejects(term.wait())

  out.ok = true
} finally {
  await sbx.kill()
}
console.log(JSON.stringify(out))
// the SDK leaves request timers behind a refused call: do not wait for them
process.exit(0)
