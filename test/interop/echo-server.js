'use strict'
// echo-server.js: the original npm token-server 1.0.10 as an echo server, for
// the Go interop tests (see interop_test.go).
//
//   node echo-server.js --key server.key --cert server.crt --ca ca.crt
//   (or TS_KEY, TS_CERT, TS_CA in the environment)
//   node echo-server.js --pfx server.pfx --passphrase TEXT [--ca ca.crt]
//   node echo-server.js --path /tmp/ts.sock ...
//
// It listens on 127.0.0.1 on a free port (or, with --path, on that Unix
// socket) with requestCert and rejectUnauthorized, prints one line
// "listening <port>" (or "listening <path>") on stdout once the server's
// connect event fired, and echoes every token back. --passphrase decrypts an
// encrypted --key or --pfx; --pfx replaces --key and --cert; all are passed
// to TokenServer as they are. On SIGTERM, on a
// line "close" on stdin, or at the end of stdin it calls server.close() and
// prints "closed" when the close event fires, then exits. Errors go to stderr.
// Nothing else is written to stdout.

const fs = require('fs')
const readline = require('readline')

let TokenServer
try {
  ({ TokenServer } = require('token-server'))
} catch (err) {
  console.error('echo-server: cannot load token-server (run `npm ci` in test/interop, or `make test`):', err.message)
  process.exit(2)
}

function option (name, envName) {
  const i = process.argv.indexOf('--' + name)
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1]
  return process.env[envName] || ''
}

function readPEM (name, envName) {
  const file = option(name, envName)
  if (!file) {
    console.error(`echo-server: --${name} (or ${envName}) is required`)
    process.exit(2)
  }
  return fs.readFileSync(file)
}

const options = { requestCert: true, rejectUnauthorized: true }
if (option('path', 'TS_PATH')) {
  // With a port, net.Server#listen would ignore the path.
  options.path = option('path', 'TS_PATH')
} else {
  options.host = '127.0.0.1'
  options.port = 0
}
if (option('pfx', 'TS_PFX')) {
  options.pfx = readPEM('pfx', 'TS_PFX')
  if (option('ca', 'TS_CA')) options.ca = readPEM('ca', 'TS_CA')
} else {
  options.key = readPEM('key', 'TS_KEY')
  options.cert = readPEM('cert', 'TS_CERT')
  options.ca = readPEM('ca', 'TS_CA')
}
if (option('passphrase', 'TS_PASSPHRASE')) options.passphrase = option('passphrase', 'TS_PASSPHRASE')

const server = new TokenServer(options)

server.on('connect', () => {
  const address = server.server.address()
  process.stdout.write(`listening ${typeof address === 'string' ? address : address.port}\n`)
})

server.on('token', (token, connection) => {
  connection.send(token)
})

server.on('error', (err) => {
  console.error('echo-server: server error:', err.message)
})

server.on('close', (hadError) => {
  process.stdout.write('closed\n', () => process.exit(hadError ? 1 : 0))
})

// token-server 1.0.10 attaches no error listener to its sockets, so a peer that
// resets its connection would crash this process with an unhandled 'error'.
// Log such errors instead: the tests look at the events, not at crashes that
// have nothing to do with the wire format.
server.server.on('secureConnection', (socket) => {
  socket.on('error', (err) => console.error('echo-server: connection error:', err.message))
})
server.server.on('tlsClientError', (err) => {
  console.error('echo-server: TLS client error:', err.message)
})

let closing = false
function close (why) {
  if (closing) return
  closing = true
  if (!server.close()) {
    console.error(`echo-server: close (${why}): server was not listening`)
    process.stdout.write('closed\n', () => process.exit(0))
  }
}

process.on('SIGTERM', () => close('SIGTERM'))
const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  if (line.trim() === 'close') close('stdin')
})
rl.on('close', () => close('end of stdin'))
