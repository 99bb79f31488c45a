// The code interpreter through the unmodified @e2b/code-interpreter SDK:
// runCode with state kept between calls, the last expression as the text
// result, streamed stdout/stderr (also from subprocesses), errors with
// tracebacks, envs, and contexts: create, list, run in, restart, remove.
// Exits non-zero on the first surprise.
import assert from 'node:assert/strict'
import { Sandbox } from '@e2b/code-interpreter'

const sbx = await Sandbox.create() // the code-interpreter-v1 template
const out = { sandboxId: sbx.sandboxId }
try {
  // state persists between calls; the last expression is the result
  const a = await sbx.runCode('x = 21\nprint("set x")\nx * 2')
  assert.equal(a.text, '42')
  assert.deepEqual(a.logs.stdout, ['set x\n'])
  assert.equal(a.error, undefined)
  const b = await sbx.runCode('x + 1')
  assert.equal(b.text, '22')
  assert.ok(b.executionCount >= 2)

  // no result when the last statement is not an expression
  const c = await sbx.runCode('y = [1, 2, 3]')
  assert.equal(c.results.length, 0)
  assert.equal((await sbx.runCode('sum(y)')).text, '6')

  // streaming callbacks; a subprocess's output is captured too
  const seen = []
  const errs = []
  const results = []
  const d = await sbx.runCode('import sys, subprocess\nprint("one")\nprint("two", file=sys.stderr)\n' +
    'subprocess.run(["echo", "from a child"])\n"done"', {
    onStdout: (m) => seen.push(m.line),
    onStderr: (m) => errs.push(m.line),
    onResult: (r) => results.push(r.text),
  })
  assert.deepEqual(seen.join(''), 'one\nfrom a child\n')
  assert.deepEqual(errs.join(''), 'two\n')
  assert.deepEqual(results, ["'done'"])
  assert.equal(d.text, "'done'")

  // errors: name, value, traceback
  const e = await sbx.runCode('def f():\n    raise ValueError("bad input")\nf()')
  assert.equal(e.error.name, 'ValueError')
  assert.equal(e.error.value, 'bad input')
  assert.match(e.error.traceback, /raise ValueError\("bad input"\)/)
  const s = await sbx.runCode('1 +')
  assert.equal(s.error.name, 'SyntaxError')

  // envs for one execution only
  const env = await sbx.runCode('import os\nos.environ.get("ONLY_HERE")', { envs: { ONLY_HERE: 'yes' } })
  assert.equal(env.text, "'yes'")
  assert.equal((await sbx.runCode('import os\nos.environ.get("ONLY_HERE")')).text, undefined)

  // rich representations
  const html = await sbx.runCode('class H:\n    def _repr_html_(self): return "<b>hi</b>"\nH()')
  assert.equal(html.results[0].html, '<b>hi</b>')

  // contexts: separate namespaces and working directories
  const ctx = await sbx.createCodeContext({ cwd: '/tmp' })
  assert.ok(ctx.id)
  assert.equal(ctx.cwd, '/tmp')
  assert.equal(ctx.language, 'python')
  const inCtx = await sbx.runCode('import os\nx = "ctx"\nos.getcwd()', { context: ctx })
  assert.equal(inCtx.text, "'/tmp'")
  assert.equal((await sbx.runCode('x', { context: ctx })).text, "'ctx'")
  assert.equal((await sbx.runCode('x')).text, '21') // the default context is untouched
  const listed = await sbx.listCodeContexts()
  assert.ok(listed.some((c) => c.id === ctx.id))
  await sbx.restartCodeContext(ctx)
  const gone = await sbx.runCode('x', { context: ctx })
  assert.equal(gone.error.name, 'NameError')
  await sbx.removeCodeContext(ctx)
  assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
  await assert.rejects(sbx.runCode('1', { context: ctx }))

  // other languages are refused, plainly
  await assert.rejects(sbx.runCode('console.log(1)', { language: 'javascript' }))

  // a cell that outlives its client is interrupted, and the next one runs
  await assert.rejects(sbx.runCode('import time\nwhile True: time.sleep(0.05)', { timeoutMs: 800 }))
  assert.equal((await sbx.runCode('x')).text, '21')

  out.ok = true
} finally {
  await sbx.kill()
}
console.log(JSON.stringify(out))
// the SDK leaves request timers behind a refused call: do not wait for them
process.exit(0)
