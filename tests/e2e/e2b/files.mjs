// Files through the unmodified SDK: write (one file, several, text and
// binary, into missing directories, raw octet-stream uploads), read (text,
// bytes, large), list, exists, makeDir, remove, rename, getInfo, watchDir.
// Exits non-zero on the first surprise.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { FileNotFoundError, Sandbox } from 'e2b'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function until(what, fn, ms = 20_000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const sbx = await Sandbox.create('base')
const out = { sandboxId: sbx.sandboxId }
try {
  // write and read back
  const info = await sbx.files.write('/tmp/hello.txt', 'hello world')
  assert.equal(info.path, '/tmp/hello.txt')
  assert.equal(info.name, 'hello.txt')
  assert.equal(await sbx.files.read('/tmp/hello.txt'), 'hello world')
  assert.equal((await sbx.commands.run('cat /tmp/hello.txt')).stdout, 'hello world')

  // an empty file
  await sbx.files.write('/tmp/empty', '')
  assert.equal(await sbx.files.read('/tmp/empty'), '')

  // missing parent directories are created
  await sbx.files.write('/tmp/a/b/c/deep.txt', 'deep')
  assert.equal(await sbx.files.read('/tmp/a/b/c/deep.txt'), 'deep')

  // several files in one upload
  const many = await sbx.files.write([
    { path: '/tmp/m/one.txt', data: '1' },
    { path: '/tmp/m/two.txt', data: '22' },
  ])
  assert.deepEqual(many.map((f) => f.path).sort(), ['/tmp/m/one.txt', '/tmp/m/two.txt'])

  // binary, large, round trip
  const blob = randomBytes(5 * 1024 * 1024 + 17)
  await sbx.files.write('/tmp/blob.bin', blob)
  const back = await sbx.files.read('/tmp/blob.bin', { format: 'bytes' })
  assert.equal(Buffer.from(back).length, blob.length)
  assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(blob).digest('hex'))
  const sum = await sbx.commands.run('sha256sum /tmp/blob.bin')
  assert.ok(sum.stdout.startsWith(createHash('sha256').update(blob).digest('hex')))

  // a streamed body goes up as application/octet-stream
  const streamed = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode('streamed '))
      c.enqueue(new TextEncoder().encode('body'))
      c.close()
    },
  })
  await sbx.files.write('/tmp/streamed.txt', streamed)
  assert.equal(await sbx.files.read('/tmp/streamed.txt'), 'streamed body')
  // gzip-compressed octet-stream upload
  await sbx.files.write('/tmp/gz.txt', 'compressed on the wire', { gzip: true })
  assert.equal(await sbx.files.read('/tmp/gz.txt'), 'compressed on the wire')

  // exists, getInfo
  assert.equal(await sbx.files.exists('/tmp/hello.txt'), true)
  assert.equal(await sbx.files.exists('/tmp/nope'), false)
  const fi = await sbx.files.getInfo('/tmp/hello.txt')
  assert.equal(fi.type, 'file')
  assert.equal(fi.size, 11)
  assert.equal(fi.name, 'hello.txt')
  assert.ok(fi.modifiedTime instanceof Date && Math.abs(fi.modifiedTime - Date.now()) < 600_000)
  assert.match(fi.permissions, /^-rw/)
  const di = await sbx.files.getInfo('/tmp/a')
  assert.equal(di.type, 'dir')

  // a user is a credential: nobody's file calls are refused what nobody's
  // shell is refused; without a user they run as root
  await assert.rejects(sbx.files.read('/etc/shadow', { user: 'nobody' }), /permission denied.*nobody/)
  await assert.rejects(sbx.files.write('/etc/evil', 'x', { user: 'nobody' }), /permission denied.*nobody/)
  await assert.rejects(sbx.files.makeDir('/root/d', { user: 'nobody' }), /permission denied.*nobody/)
  await assert.rejects(sbx.files.list('/root', { user: 'nobody' }), /permission denied.*nobody/)
  assert.equal(await sbx.files.exists('/etc/evil'), false)
  assert.equal(await sbx.files.exists('/root/d'), false)
  assert.match(await sbx.files.read('/etc/shadow'), /^root:/)
  await sbx.files.write('/tmp/nobodys', 'mine', { user: 'nobody' })
  assert.equal((await sbx.files.getInfo('/tmp/nobodys')).owner, 'nobody')
  // the sandbox agent's own /proc entries, whoever asks
  await assert.rejects(sbx.files.read('/proc/1/maps'), /off limits/)
  await assert.rejects(sbx.files.read('/proc/self/environ', { user: 'nobody' }), /off limits/)

  // makeDir: true when made, false when it was there
  assert.equal(await sbx.files.makeDir('/tmp/newdir/sub'), true)
  assert.equal(await sbx.files.makeDir('/tmp/newdir/sub'), false)

  // list, with depth
  const entries = await sbx.files.list('/tmp/m')
  assert.deepEqual(entries.map((e) => e.name).sort(), ['one.txt', 'two.txt'])
  assert.ok(entries.every((e) => e.type === 'file' && e.path.startsWith('/tmp/m/')))
  const deep = await sbx.files.list('/tmp/a', { depth: 3 })
  assert.deepEqual(deep.map((e) => e.path).sort(), ['/tmp/a/b', '/tmp/a/b/c', '/tmp/a/b/c/deep.txt'])

  // rename, remove
  const moved = await sbx.files.rename('/tmp/m/one.txt', '/tmp/m/uno.txt')
  assert.equal(moved.path, '/tmp/m/uno.txt')
  assert.equal(await sbx.files.exists('/tmp/m/one.txt'), false)
  await sbx.files.remove('/tmp/m')
  assert.equal(await sbx.files.exists('/tmp/m'), false)

  // missing files
  await assert.rejects(sbx.files.read('/tmp/does-not-exist'), FileNotFoundError)
  await assert.rejects(sbx.files.getInfo('/tmp/does-not-exist'), FileNotFoundError)
  await assert.rejects(sbx.files.list('/tmp/does-not-exist'), FileNotFoundError)

  // watchDir
  await sbx.files.makeDir('/tmp/watched')
  const events = []
  const handle = await sbx.files.watchDir('/tmp/watched', (ev) => events.push(ev))
  await sbx.files.write('/tmp/watched/new.txt', 'x')
  await sbx.commands.run('echo more >> /tmp/watched/new.txt; rm /tmp/watched/new.txt')
  await until('create, write and remove events', async () =>
    ['create', 'write', 'remove'].every((t) => events.some((e) => e.type === t && e.name === 'new.txt')))
  await handle.stop()

  // recursive watch sees a subdirectory
  const revents = []
  const rh = await sbx.files.watchDir('/tmp/watched', (ev) => revents.push(ev), { recursive: true })
  await sbx.files.makeDir('/tmp/watched/sub')
  await sleep(200)
  await sbx.files.write('/tmp/watched/sub/inner.txt', 'y')
  await until('an event inside the subdirectory', async () => revents.some((e) => e.name === 'sub/inner.txt'))
  await rh.stop()

  out.ok = true
} finally {
  await sbx.kill()
}
console.log(JSON.stringify(out))
// the SDK leaves request timers behind a refused call: do not wait for them
process.exit(0)
