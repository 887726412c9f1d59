// What one directory change costs (docs/performance.md, prune): N files in one folder, then removed four ways, timed.
//   0: unlink (no compare-and-delete)        1: rename aside in the same folder, then unlink the aside (ours)
//   2: rename into a private subfolder, unlink each at once   3: the same, all unlinks batched at the end
// Build and run: cc -O2 -o /tmp/dir-changes bench/dir-changes.c && /tmp/dir-changes <mode> 10000 <new folder>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int mode = atoi(argv[1]);
  int n = atoi(argv[2]);
  const char *dir = argv[3];
  char path[256], aside[1024], sub[256];
  if (mkdir(dir, 0700) != 0) return 2;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%016x.json", dir, i * 2654435761u);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    if (write(fd, "{\"entry\":\"bytes of about the size of a small entry, padded a little more\"}\n", 76) != 76) return 2;
    close(fd);
  }
  snprintf(sub, sizeof sub, "%s/.cad-1", dir);
  if (mode >= 2) mkdir(sub, 0700);
  double start = now();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%016x.json", dir, i * 2654435761u);
    if (mode == 0) {
      unlink(path);
      continue;
    }
    if (mode == 1) snprintf(aside, sizeof aside, "%s.cad-123456-t987654321-%d-abcdef01", path, i);
    else snprintf(aside, sizeof aside, "%s/%016x.json", sub, i * 2654435761u);
    rename(path, aside);
    if (mode != 3) unlink(aside);
  }
  if (mode == 3) {
    for (int i = 0; i < n; i++) {
      snprintf(aside, sizeof aside, "%s/%016x.json", sub, i * 2654435761u);
      unlink(aside);
    }
  }
  if (mode >= 2) rmdir(sub);
  double took = now() - start;
  printf("mode %d: %.1f ms, %.2f us per file\n", mode, took, took * 1000 / n);
  rmdir(dir);
  return 0;
}
