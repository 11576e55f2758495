// One STARTTLS session against the test app behind the helper, from whatever node runs this
// script (the tests run it on another runtime than their own). Prints what the client saw:
//   node session-client.js PORT REPORT_DIR
import { tlsSession } from '../helpers';

const [port, report] = process.argv.slice(2);
tlsSession(Number(port), report!).then(
  (s) => process.stdout.write(`${JSON.stringify({ node: process.version, keyInfo: s.keyInfo, protocol: s.protocol, vars: Object.fromEntries(s.vars) })}\n`),
  (e: Error) => {
    process.stderr.write(`session-client: ${e.message}\n`);
    process.exit(1);
  },
);
