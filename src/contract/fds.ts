// The file descriptors of UCSPI-TLS and of UCSPI's tcpclient, and the variables that name
// them to the app (ucspi-tls(7)). Pure.

/** The app's control socket, and the channels it reads and writes once TLS is up. */
export const CTL_FD = 3;
export const READ_FD = 4;
export const WRITE_FD = 5;

/** tcpclient's fds for the connection (ucspi-tcp): what ucspi-tls-client relays. */
export const NET_READ_FD = 6;
export const NET_WRITE_FD = 7;

/** The variables that tell the app where its UCSPI-TLS fds are. */
export const FD_VARIABLES = ['SSLCTLFD', 'SSLREADFD', 'SSLWRITEFD'] as const;

/** SSLCTLFD=3, SSLREADFD=4, SSLWRITEFD=5: what an app under a UCSPI-TLS program finds. */
export function fdVariables(): Record<(typeof FD_VARIABLES)[number], string> {
  return { SSLCTLFD: String(CTL_FD), SSLREADFD: String(READ_FD), SSLWRITEFD: String(WRITE_FD) };
}
