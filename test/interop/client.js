'use strict'
// client.js: the original npm token-server 1.0.10 TokenClient, driven by JSON
// lines, for the Go interop tests (see interop_test.go).
//
//   node client.js --host 127.0.0.1 --port 4433 [--key client.key --cert client.crt] [--ca ca.crt]
//   (or TS_HOST, TS_PORT, TS_KEY, TS_CERT, TS_CA in the environment)
//   node client.js --path /tmp/ts.sock ...   (a Unix socket instead of host and port)
//
// More options, each passed to TokenClient (and so to tls.connect) as it is:
//   --servername NAME     the name the server certificate is checked against
//                         (Node's default: host, or "localhost" with --path)
//   --pfx FILE            a PKCS #12 archive instead of --key and --cert
//   --passphrase TEXT     decrypts an encrypted --key or --pfx
//
// Commands, one JSON object per line on stdin:
//   {"send": "<hex>"}   client.send(token); prints {"event":"sendRefused"} if it returns false
//   {"raw": "<hex>"}    writes the bytes to the TLS socket as they are, unframed
//                       (to send what the original's own encoder never would)
//   {"close": true}     client.close()
// The end of stdin closes the client too.
//
// Events, one JSON object per line on stdout:
//   {"event":"connect"}
//   {"event":"token","hex":"..."}
//   {"event":"remoteClose"}
//   {"event":"error","message":"...","code":"..."}
//   {"event":"close","hadError":bool}   (then the process exits)

const fs = require('fs')
const readline = require('readline')

let TokenClient
try {
  ({ TokenClient } = require('token-server'))
} catch (err) {
  console.error('client: cannot load token-server (run `npm ci` in test/interop, or `make test`):', err.message)
  process.exit(2)
}

function option (name, envName) {
  const i = process.argv.indexOf('--' + name)
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1]
  return process.env[envName] || ''
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const options = {}
if (option('path', 'TS_PATH')) {
  options.path = option('path', 'TS_PATH')
} else {
  options.host = option('host', 'TS_HOST') || '127.0.0.1'
  options.port = Number(option('port', 'TS_PORT'))
  if (!(options.port > 0)) {
    console.error('client: --port (or TS_PORT), or --path, is required')
    process.exit(2)
  }
}
for (const name of ['key', 'cert', 'ca', 'pfx']) {
  const file = option(name, 'TS_' + name.toUpperCase())
  if (file) options[name] = fs.readFileSync(file)
}
for (const name of ['servername', 'passphrase']) {
  const value = option(name, 'TS_' + name.toUpperCase())
  if (value) options[name] = value
}

const client = new TokenClient(options)
client.on('connect', () => emit({ event: 'connect' }))
client.on('token', (token) => emit({ event: 'token', hex: token.toString('hex') }))
client.on('remoteClose', () => emit({ event: 'remoteClose' }))
client.on('error', (err) => emit({ event: 'error', message: String(err && err.message), code: (err && err.code) || '' }))
client.on('close', (hadError) => {
  emit({ event: 'close', hadError: Boolean(hadError) })
  process.exit(0)
})

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  if (!line.trim()) return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    console.error('client: bad command:', err.message)
    return
  }
  if (typeof cmd.send === 'string') {
    if (!client.send(Buffer.from(cmd.send, 'hex'))) emit({ event: 'sendRefused' })
  } else if (typeof cmd.raw === 'string') {
    client.socket.write(Buffer.from(cmd.raw, 'hex'))
  } else if (cmd.close) {
    client.close()
  } else {
    console.error('client: unknown command:', line.slice(0, 80))
  }
})
rl.on('close', () => client.close())
