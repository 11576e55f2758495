// Read at build time by the Makefile's version check; kept in step with package.json.
export const VERSION = '0.1.0';
