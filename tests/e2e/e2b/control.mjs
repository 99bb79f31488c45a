// The E2B control plane through the unmodified SDKs: create (v2 path with
// e2b 2.51, v1 path with e2b 2.50), connect, getInfo, list with metadata
// filters and pagination, setTimeout, getMetrics, pause and resume, kill.
// Prints one JSON line of what it saw; exits non-zero on the first failed
// expectation.
import assert from 'node:assert/strict'
import { Sandbox, SandboxNotFoundError } from 'e2b'
import { Sandbox as LegacySandbox } from 'e2b-legacy'

const tag = process.argv[2] || `t${Date.now()}`
const out = {}

const a = await Sandbox.create('base', { timeoutMs: 120_000, metadata: { suite: tag, role: 'a' }, envs: { FOO: 'bar' } })
const b = await Sandbox.create({ template: 'base', metadata: { suite: tag, role: 'b' } })
out.a = a.sandboxId
out.b = b.sandboxId
assert.match(a.sandboxId, /^[0-9a-f]{64}$/)

const info = await a.getInfo()
assert.equal(info.sandboxId, a.sandboxId)
assert.equal(info.templateId, 'base')
assert.equal(info.state, 'running')
assert.deepEqual(info.metadata, { suite: tag, role: 'a' })
assert.ok(info.startedAt instanceof Date && !isNaN(info.startedAt))
const life = info.endAt - info.startedAt
assert.ok(life > 110_000 && life < 130_000, `endAt - startedAt = ${life}`)
assert.ok(info.memoryMB > 0 && info.cpuCount > 0)
out.envdVersion = info.envdVersion

// b was created without a timeout: the server's default (300 s)
const binfo = await Sandbox.getInfo(b.sandboxId)
const blife = binfo.endAt - binfo.startedAt
assert.ok(blife > 290_000 && blife < 310_000, `default lifetime ${blife}`)

assert.equal(await a.isRunning(), true)

// list: filtered by metadata, one page at a time
const seen = []
const pager = Sandbox.list({ query: { metadata: { suite: tag }, state: ['running'] }, limit: 1 })
while (pager.hasNext) {
  const items = await pager.nextItems()
  assert.ok(items.length <= 1)
  for (const s of items) seen.push(s.sandboxId)
}
assert.deepEqual(seen.sort(), [a.sandboxId, b.sandboxId].sort())
const onlyA = await Sandbox.list({ query: { metadata: { suite: tag, role: 'a' } } }).nextItems()
assert.deepEqual(onlyA.map((s) => s.sandboxId), [a.sandboxId])
assert.equal((await Sandbox.list({ query: { metadata: { suite: 'nope-' + tag } } }).nextItems()).length, 0)

// setTimeout moves the end
await a.setTimeout(600_000)
const later = await a.getInfo()
assert.ok(later.endAt - Date.now() > 500_000, `endAt after setTimeout: ${later.endAt}`)

const metrics = await a.getMetrics()
assert.equal(metrics.length, 1)
assert.ok(metrics[0].memUsed > 0 && metrics[0].memTotal > 0 && metrics[0].cpuCount > 0)

// pause, then connect resumes it
assert.equal(await a.pause(), true)
assert.equal((await a.getInfo()).state, 'paused')
assert.equal(await Sandbox.pause(a.sandboxId), false) // already paused: 409
const again = await Sandbox.connect(a.sandboxId, { timeoutMs: 60_000 })
assert.equal(again.sandboxId, a.sandboxId)
assert.equal((await a.getInfo()).state, 'running')

// kill: true once, then false; the sandbox is gone
assert.equal(await a.kill(), true)
assert.equal(await Sandbox.kill(a.sandboxId), false)
await assert.rejects(() => Sandbox.getInfo(a.sandboxId), SandboxNotFoundError)
assert.equal(await a.isRunning(), false)
assert.equal(await Sandbox.kill(b.sandboxId), true)

// the v1 paths, as e2b 2.50 uses them
const l = await LegacySandbox.create('base', { metadata: { suite: tag, role: 'legacy' } })
out.legacy = l.sandboxId
const lc = await LegacySandbox.connect(l.sandboxId)
assert.equal((await lc.getInfo()).metadata.role, 'legacy')
assert.equal(await lc.kill(), true)

// errors the SDK maps
await assert.rejects(() => Sandbox.create('no-such-template-' + tag), /404/)
await assert.rejects(() => Sandbox.connect('0'.repeat(64)), SandboxNotFoundError)

console.log(JSON.stringify(out))
// the SDK leaves request timers behind a refused call: do not wait for them
process.exit(0)
