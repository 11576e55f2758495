/*
 * The benchmark's C spawner: the least a process that starts apps on request costs. One byte
 * on fd 0 asks for one start of the command given; it runs with /dev/null on 0, 1 and 2 and
 * the spawner's environment, through posix_spawn (glibc clones with CLONE_VFORK: no copy of
 * the spawner's page tables), is waited for, and its exit status (255: killed, or could not
 * start) goes back as one byte on fd 1. "r" on fd 1 first says it is ready. Ends at EOF.
 *
 *   spawner FILE [ARG...]
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int put(unsigned char c) {
  for (;;) {
    ssize_t w = write(1, &c, 1);
    if (w == 1) return 0;
    if (w < 0 && errno == EINTR) continue;
    return -1;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("usage: spawner FILE [ARG...]\n", stderr);
    return 100;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  if (put('r') != 0) return 111;
  unsigned char req[256];
  for (;;) {
    ssize_t n = read(0, req, sizeof req);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    for (ssize_t i = 0; i < n; i++) {
      pid_t pid;
      int status = 255;
      if (posix_spawn(&pid, argv[1], &fa, NULL, argv + 1, environ) == 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(st)) status = WEXITSTATUS(st);
      }
      if (put((unsigned char)status) != 0) return 111;
    }
  }
}
