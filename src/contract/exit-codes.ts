// The exit statuses of the three programs themselves; otherwise they exit with the app's. Pure.

/** A bad command line. */
export const EXIT_USAGE = 100;
/** A bad configuration or environment: a file, a variable, a user, an address. */
export const EXIT_CONFIG = 111;
/** The implicit mode's handshake failed: the app never ran. */
export const EXIT_NO_TLS = 98;
/** The app could not be run, or was not found: as a shell says it. */
export const EXIT_CANNOT_RUN = 126;
export const EXIT_NOT_FOUND = 127;
