// sdk.cjs: bench/api/run.py's E2B SDK rounds: Sandbox.create('base'), then
// commands.run('echo hi') until its first output, then kill; prints one
// JSON line per round with the times in milliseconds.  Runs against
// E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY; the SDK comes from
// tests/e2e/e2b/node_modules (NODE_PATH).
const { Sandbox } = require('e2b')

async function main() {
  const rounds = Number(process.argv[2] || 50)
  for (let i = 0; i < rounds + 2; i++) {
    const t0 = performance.now()
    const sbx = await Sandbox.create('base')
    const t1 = performance.now()
    let first = 0
    const r = await sbx.commands.run('echo hi', { onStdout: () => { if (!first) first = performance.now() } })
    const t2 = performance.now()
    if (r.stdout !== 'hi\n') throw new Error('unexpected output ' + JSON.stringify(r.stdout))
    await sbx.kill()
    const t3 = performance.now()
    if (i >= 2) // two warm-up rounds
      console.log(JSON.stringify({ create: t1 - t0, firstOutput: first - t0, exec: t2 - t1, kill: t3 - t2, total: t3 - t0 }))
  }
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
