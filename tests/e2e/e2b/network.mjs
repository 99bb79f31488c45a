// Egress rules through the unmodified SDK, on the fake internet of
// tests/e2e/netenv.py (the server and this script run in its host
// namespace): allowInternetAccess, network.allowOut/denyOut, updateNetwork,
// getInfo reading them back, and the options capsa refuses with its reason
// in the SDK's error.  argv: the www server's address, its name, the other
// server's address and name, and the address the servers see for the host
// (NAT).  Prints one JSON line; exits non-zero on the first surprise.
import assert from 'node:assert/strict'
import { Sandbox, SandboxNotFoundError } from 'e2b'

const [www, wwwName, other, otherName, hostAddr] = process.argv.slice(2)

// The body of GET /whoami from target, or '' when it cannot be reached
// (bash's /dev/tcp: the Debian template has no nc; every wait is bounded).
async function whoami(sbx, target) {
  const r = await sbx.commands.run(
    `timeout 5 bash -c "exec 3<>/dev/tcp/${target}/80 && ` +
    `printf 'GET /whoami HTTP/1.0\\r\\nHost: ${target}\\r\\n\\r\\n' >&3 && cat <&3" 2>/dev/null | tail -n 1; true`,
    { timeoutMs: 30_000 })
  return r.stdout.trim()
}

async function refused(opts, words) {
  await assert.rejects(() => Sandbox.create('base', opts), (e) => {
    assert.ok(e.message.includes(words), `error '${e.message}' does not say '${words}'`)
    return true
  })
}

const out = {}
const made = []
try {
  // the default: the internet (NAT: the server sees the host's address)
  const open = await Sandbox.create('base')
  made.push(open)
  assert.equal(await whoami(open, www), hostAddr)
  let info = await open.getInfo()
  assert.equal(info.allowInternetAccess, true)
  assert.deepEqual([info.network.allowOut, info.network.denyOut], [[], []])

  // allowInternetAccess: false reaches nothing
  const closed = await Sandbox.create('base', { allowInternetAccess: false })
  made.push(closed)
  assert.equal(await whoami(closed, www), '')
  assert.equal(await whoami(closed, wwwName), '')
  info = await closed.getInfo()
  assert.equal(info.allowInternetAccess, false)
  assert.deepEqual([info.network.allowOut, info.network.denyOut], [[], ['0.0.0.0/0']])

  // only www, by name: E2B's allowOut over a deny of everything
  const only = await Sandbox.create('base', { network: { allowOut: [wwwName], denyOut: ['0.0.0.0/0'] } })
  made.push(only)
  assert.equal(await whoami(only, wwwName), hostAddr)
  assert.equal(await whoami(only, otherName), '')
  assert.equal(await whoami(only, other), '')
  info = await Sandbox.getInfo(only.sandboxId)
  assert.equal(info.allowInternetAccess, false)
  assert.deepEqual([info.network.allowOut, info.network.denyOut], [[wwwName], ['0.0.0.0/0']])

  // updateNetwork replaces the rules: now everything but www
  await only.updateNetwork({ denyOut: [www] })
  assert.equal(await whoami(only, www), '')
  assert.equal(await whoami(only, other), hostAddr)
  info = await only.getInfo()
  assert.equal(info.allowInternetAccess, true)
  assert.deepEqual([info.network.allowOut, info.network.denyOut], [[], [www]])
  // an allowed address inside a denied range takes precedence (E2B's rule)
  await only.updateNetwork({ allowOut: [www], denyOut: [`${www.split('.').slice(0, 3).join('.')}.0/24`] })
  assert.equal(await whoami(only, www), hostAddr)
  assert.equal(await whoami(only, other), '')
  // and omitted fields clear theirs
  await only.updateNetwork({})
  assert.equal(await whoami(only, other), hostAddr)
  info = await only.getInfo()
  assert.deepEqual([info.allowInternetAccess, info.network.allowOut, info.network.denyOut], [true, [], []])
  await open.updateNetwork({ allowInternetAccess: false })
  assert.equal(await whoami(open, www), '')
  assert.equal((await open.getInfo()).allowInternetAccess, false)
  await assert.rejects(() => Sandbox.updateNetwork('f'.repeat(64), { denyOut: [www] }), SandboxNotFoundError)

  // what capsa cannot do is refused, and the SDK's error says why
  await refused({ network: { allowOut: [wwwName], rules: { [wwwName]: [{ transform: { headers: { 'X-A': 'b' } } }] } } },
    'not supported by capsa yet')
  await refused({ network: { egressProxy: { address: 'proxy.example.test:1080' } } }, 'not supported by capsa yet')
  await refused({ network: { denyOut: [otherName] } }, 'not domain names')
  await refused({ network: { allowOut: [wwwName], denyOut: [other] } }, 'capsa cannot express')
  await refused({ network: { allowPublicTraffic: true } }, 'access token')
  await assert.rejects(() => only.updateNetwork({ rules: { [wwwName]: [{}] } }), /not supported by capsa yet/)
  out.sandboxes = made.map((s) => s.sandboxId)
  out.ok = true
} finally {
  for (const s of made) await s.kill()
}
console.log(JSON.stringify(out))
