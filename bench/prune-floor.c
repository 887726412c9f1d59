// The C floor for prune of dead entries (bench/prune-floor.mjs): what a careful hand-written pruner must do at
// least, with no compare-and-delete. readdir; per entry file open + read + close and a minimal parse of pid and
// pidStartTime; per distinct pid one /proc/<pid>/stat read (start ticks, field 22); unlink the dead. Prints the
// number removed and the elapsed time in ns (clock_gettime around the work, so process start is excluded).
// `prune-floor --cad <dir>` is the floor of a compare-and-delete in C: the same, but each dead file is renamed to a
// private name, proved to be the file judged (lstat of the aside against fstat of the descriptor still open), and
// only then unlinked: the second directory change and one stat are what compare-and-delete costs at least.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define CACHE 4096
static long cachedPid[CACHE];
static char cachedTicks[CACHE][32];
static int cachedAlive[CACHE];
static int cached = 0;

static const char *startTicks(long pid) {
  static char ticks[32];
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return NULL;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return NULL;
  p += 2;  // state
  for (int field = 3; field < 22 && p; field++) p = strchr(p, ' '), p = p ? p + 1 : NULL;
  if (!p) return NULL;
  size_t len = strcspn(p, " ");
  if (len >= sizeof ticks) return NULL;
  memcpy(ticks, p, len);
  ticks[len] = 0;
  return ticks;
}

static int alive(long pid, const char *ticks) {
  for (int i = 0; i < cached; i++) {
    if (cachedPid[i] == pid && strcmp(cachedTicks[i], ticks) == 0) return cachedAlive[i];
  }
  const char *now = startTicks(pid);
  int result = now != NULL && strcmp(now, ticks) == 0;
  if (cached < CACHE) {
    cachedPid[cached] = pid;
    snprintf(cachedTicks[cached], sizeof cachedTicks[cached], "%s", ticks);
    cachedAlive[cached++] = result;
  }
  return result;
}

static double cpuMs(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

int main(int argc, char **argv) {
  int cad = argc > 2 && strcmp(argv[1], "--cad") == 0;
  if (argc < 2 + cad) return 2;
  struct timespec t0, t1;
  double cpu0 = cpuMs();
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int dirfd = open(argv[1 + cad], O_RDONLY | O_DIRECTORY);
  DIR *dir = fdopendir(dirfd);
  if (!dir) return 2;
  static char buf[65536];
  long removed = 0;
  int self = (int)getpid();
  struct dirent *d;
  while ((d = readdir(dir)) != NULL) {
    size_t len = strlen(d->d_name);
    if (len < 6 || strcmp(d->d_name + len - 5, ".json") != 0) continue;
    int fd = openat(dirfd, d->d_name, O_RDONLY | O_NOFOLLOW);
    if (fd < 0) continue;
    struct stat judged;
    if (cad && fstat(fd, &judged) != 0) { close(fd); continue; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (!cad) close(fd);
    if (n <= 0) { if (cad) close(fd); continue; }
    buf[n] = 0;
    char *p = strstr(buf, "\"pid\":");
    char *t = strstr(buf, "\"pidStartTime\":");
    if (!p || !t) continue;
    long pid = strtol(p + 6, NULL, 10);
    t = strchr(t + 15, '"');
    if (!t) continue;
    char ticks[32];
    size_t tl = strcspn(t + 1, "\"");
    if (tl >= sizeof ticks) continue;
    memcpy(ticks, t + 1, tl);
    ticks[tl] = 0;
    if (alive(pid, ticks)) { if (cad) close(fd); continue; }
    if (!cad) {
      if (unlinkat(dirfd, d->d_name, 0) == 0) removed++;
      continue;
    }
    char aside[512];
    struct stat now;
    snprintf(aside, sizeof aside, "%s.cad-%d-t1-%ld-abcdef01", d->d_name, self, removed);
    if (renameat(dirfd, d->d_name, dirfd, aside) == 0) {
      if (fstatat(dirfd, aside, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == judged.st_ino && now.st_dev == judged.st_dev &&
          now.st_size == judged.st_size && now.st_mtim.tv_sec == judged.st_mtim.tv_sec && now.st_mtim.tv_nsec == judged.st_mtim.tv_nsec) {
        if (unlinkat(dirfd, aside, 0) == 0) removed++;
      } else {
        linkat(dirfd, aside, dirfd, d->d_name, 0);
        unlinkat(dirfd, aside, 0);
      }
    }
    close(fd);
  }
  closedir(dir);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%ld %lld %.3f\n", removed, (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec), cpuMs() - cpu0);
  return 0;
}
