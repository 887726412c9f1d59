import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Most files wait on child processes, etcd or the disk, not the CPU: two files at a time on 2 cores
    // took the suite from ~170 s to ~130 s (vitest's default here would be one).
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
