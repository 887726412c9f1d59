import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { sha256Hex } from '../src/sha256.js'

const reference = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex')

describe('sha256Hex', () => {
  it('matches node:crypto on every length around the block boundaries', () => {
    for (let length = 0; length <= 200; length++) {
      const text = 'a/'.repeat(length).slice(0, length)
      expect(sha256Hex(text)).toBe(reference(text))
    }
  })

  it('hashes the UTF-8 bytes of non-ASCII paths', () => {
    for (const text of ['/home/jürgen/projekt', '/tmp/日本語/ワークスペース', '/x/emoji-😀', '/Users/dan/projects/foo']) {
      expect(sha256Hex(text)).toBe(reference(text))
    }
  })

  it('handles long paths that span many blocks', () => {
    const text = `/deep${'/level'.repeat(700)}`
    expect(sha256Hex(text)).toBe(reference(text))
  })

  it('cuts to the requested number of hex characters', () => {
    expect(sha256Hex('/Users/dan/projects/foo', 16)).toBe('726a213943fe1d41')
  })
})
