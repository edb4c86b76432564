'use strict'
// pipeline-client.js: the original npm token-server 1.0.10 TokenClient
// pipelining random tokens through an echo server, as a producer does in
// Node: it writes whenever its socket drains (socket.write returned false:
// wait for 'drain') and reads the echoes all the while, for the Go interop
// tests (see pipeline_test.go).
//
//   node pipeline-client.js --host 127.0.0.1 --port 4433 --key client.key --cert client.crt --ca ca.crt \
//       --count 200 --size 65536
//
// Events, one JSON object per line on stdout:
//   {"event":"connect"}
//   {"event":"sent","i":0,"sha256":"..."}            each token handed to client.send, in order
//   {"event":"sendRefused","i":0}                     client.send returned false (then it stops)
//   {"event":"token","i":0,"len":65536,"sha256":"..."} each echo, in order of arrival
//   {"event":"waits","n":12}                          how many times it waited for 'drain'
//   {"event":"error","message":"...","code":"..."}
//   {"event":"close","hadError":bool}                 (then the process exits)
// Once count echoes have come back it closes the client.

const crypto = require('crypto')
const fs = require('fs')

let TokenClient
try {
  ({ TokenClient } = require('token-server'))
} catch (err) {
  console.error('pipeline-client: cannot load token-server (run `npm ci` in test/interop, or `make test`):', err.message)
  process.exit(2)
}

function option (name) {
  const i = process.argv.indexOf('--' + name)
  return i !== -1 && i + 1 < process.argv.length ? process.argv[i + 1] : ''
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

const count = Number(option('count') || 200)
const size = Number(option('size') || 65536)
const options = { host: option('host') || '127.0.0.1', port: Number(option('port')) }
for (const name of ['key', 'cert', 'ca']) {
  const file = option(name)
  if (file) options[name] = fs.readFileSync(file)
}
if (!(options.port > 0) || !(count > 0) || !(size >= 0)) {
  console.error('pipeline-client: --port, --count and --size must be positive')
  process.exit(2)
}

const client = new TokenClient(options)
let sent = 0
let received = 0
let waits = 0
let stopped = false

// needDrain: the socket's buffer is over its high-water mark (write returned
// false) and 'drain' has not come yet.
function needDrain (socket) {
  if (socket.writableNeedDrain !== undefined) return socket.writableNeedDrain
  return socket.writableLength >= socket.writableHighWaterMark
}

// pump sends tokens until the socket asks to wait, then goes on at 'drain'.
function pump () {
  while (!stopped && sent < count) {
    const token = crypto.randomBytes(size)
    if (!client.send(token)) {
      emit({ event: 'sendRefused', i: sent })
      stopped = true
      return
    }
    emit({ event: 'sent', i: sent, sha256: sha256(token) })
    sent++
    if (needDrain(client.socket)) {
      waits++
      client.socket.once('drain', pump)
      return
    }
  }
}

client.on('connect', () => {
  emit({ event: 'connect' })
  pump()
})
client.on('token', (token) => {
  emit({ event: 'token', i: received, len: token.length, sha256: sha256(token) })
  received++
  if (received === count) {
    emit({ event: 'waits', n: waits })
    client.close()
  }
})
client.on('remoteClose', () => emit({ event: 'remoteClose' }))
client.on('error', (err) => emit({ event: 'error', message: String(err && err.message), code: (err && err.code) || '' }))
client.on('close', (hadError) => {
  stopped = true
  emit({ event: 'close', hadError: Boolean(hadError) })
  process.exit(0)
})
