// For Node programs run under a UCSPI-TLS helper (ucspi-tls-wrap, ucspi-tls-client,
// sslserver -n, s6-ucspitlsd): plaintext lines, then STARTTLS without a TLS library.
export { LineReader, LineTooLongError } from './lines';
export { plaintextStreams, type Plaintext, type Side } from './plaintext';
export { BufferedPlaintextError, startTls, StartTlsError, type StartTlsOptions, type TlsChannel } from './start-tls';
