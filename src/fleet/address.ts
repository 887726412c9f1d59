import { readFileSync } from 'node:fs'
import { RegistryError } from '../errors.js'

/** Where an etcd store is and how to log in to it; the secrets stay out of {@link StoreAddress.display}. */
export interface StoreAddress {
  /** Client URLs (`http://host:port`, or `https://` for `etcds://`). */
  hosts: string[]
  /** Key prefix, without a trailing slash (may be empty). */
  prefix: string
  /** True for `etcds://`: the client speaks TLS. */
  tls: boolean
  /** User name from `user:password@`, percent-decoded. */
  user?: string
  /** Password from `user:password@`, percent-decoded. */
  password?: string
  /** The URL without user and password: what messages name. */
  display: string
}

/** How to log in to etcd, as `EtcdStoreOptions` and the environment give it. */
export interface StoreCredentials {
  /** etcd user name. @default `$WSREG_ETCD_USER`, else the user in the URL */
  user?: string
  /** Its password. @default `$WSREG_ETCD_PASSWORD`, the file `$WSREG_ETCD_PASSWORD_FILE`, else the URL's */
  password?: string
  /** CA certificate(s) to trust, as a PEM file path or its contents. @default `$WSREG_ETCD_CA`, else the system's roots */
  ca?: string | Buffer
  /** Client certificate (PEM path or contents), for an etcd that asks for one. @default `$WSREG_ETCD_CERT` */
  cert?: string | Buffer
  /** The client certificate's private key (PEM path or contents). @default `$WSREG_ETCD_KEY` */
  key?: string | Buffer
}

/** What the etcd client is given: password login and TLS material. */
export interface StoreAccess {
  auth?: { username: string; password: string }
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer }
}

export const DEFAULT_PORT = 2379
const USAGE = 'use etcd://HOST[:PORT][/prefix] or etcds://HOST[:PORT][/prefix] (TLS; port 2379 by default; several hosts: etcd://h1,h2:2380; login: WSREG_ETCD_USER and WSREG_ETCD_PASSWORD, or user:password@)'

/** The URL with any `user:password@` removed, safe to print. */
export function redactStoreUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1')
}

/** True when the URL carries a password (`user:password@`). */
export function hasPassword(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^@/?#]*:[^@/?#]*@/i.test(url)
}

/** Parse `etcd[s]://[user[:password]@]host[:port][,host[:port]…][/prefix]`. */
export function parseStoreUrl(url: string): StoreAddress {
  const invalid = (why: string): RegistryError => new RegistryError('E_INVALID', `Invalid store ${JSON.stringify(redactStoreUrl(String(url)))} (${why}): ${USAGE}.`)
  const match = typeof url === 'string' ? /^(etcds?):\/\/(?:([^@/?#]*)@)?([^@/?#]+)(\/[^?#]*)?$/.exec(url) : null
  if (!match) throw invalid('not an etcd:// or etcds:// URL')
  const [, scheme, userinfo, list = '', path = ''] = match
  const tls = scheme === 'etcds'
  const hosts: string[] = []
  for (const host of list.split(',')) {
    const parts = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(host)
    const port = parts?.[2] === undefined ? DEFAULT_PORT : Number(parts[2])
    if (!parts || port < 1 || port > 65535) throw invalid(`bad host ${JSON.stringify(host)}`)
    hosts.push(`${tls ? 'https' : 'http'}://${parts[1]}:${port}`)
  }
  const address: StoreAddress = { hosts, prefix: path.replace(/\/+$/, ''), tls, display: redactStoreUrl(url) }
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    try {
      address.user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon))
      if (colon >= 0) address.password = decodeURIComponent(userinfo.slice(colon + 1))
    } catch {
      throw invalid('bad percent-encoding in the user or password')
    }
  }
  return address
}

function pem(value: string | Buffer | undefined, what: string, source: string): Buffer | undefined {
  if (value === undefined || value === '') return undefined
  if (Buffer.isBuffer(value)) return value
  try {
    return readFileSync(value)
  } catch (error) {
    throw new RegistryError('E_INVALID', `Cannot read the ${what} file ${JSON.stringify(value)} (${source}): ${(error as NodeJS.ErrnoException).code ?? String(error)}.`, {}, { cause: error })
  }
}

/** Resolve login and TLS material: options first, then `WSREG_ETCD_*`, then the URL's `user:password@`. */
export function storeAccess(address: StoreAddress, options: StoreCredentials, env: NodeJS.ProcessEnv = process.env): StoreAccess {
  const access: StoreAccess = {}
  const user = options.user ?? (env.WSREG_ETCD_USER || undefined) ?? address.user
  let password = options.password ?? (env.WSREG_ETCD_PASSWORD || undefined)
  if (password === undefined && env.WSREG_ETCD_PASSWORD_FILE) {
    password = pem(env.WSREG_ETCD_PASSWORD_FILE, 'password', 'WSREG_ETCD_PASSWORD_FILE')?.toString('utf8').replace(/\r?\n$/, '')
  }
  password ??= address.password
  if (user !== undefined && user !== '') {
    if (password === undefined) throw new RegistryError('E_INVALID', `No password for etcd user ${JSON.stringify(user)}: set WSREG_ETCD_PASSWORD or WSREG_ETCD_PASSWORD_FILE.`)
    access.auth = { username: user, password }
  } else if (password !== undefined) {
    throw new RegistryError('E_INVALID', 'An etcd password was given without a user: set WSREG_ETCD_USER too.')
  }
  const ca = pem(options.ca ?? (env.WSREG_ETCD_CA || undefined), 'CA certificate', options.ca === undefined ? 'WSREG_ETCD_CA' : 'ca option')
  const cert = pem(options.cert ?? (env.WSREG_ETCD_CERT || undefined), 'client certificate', options.cert === undefined ? 'WSREG_ETCD_CERT' : 'cert option')
  const key = pem(options.key ?? (env.WSREG_ETCD_KEY || undefined), 'client key', options.key === undefined ? 'WSREG_ETCD_KEY' : 'key option')
  if ((cert === undefined) !== (key === undefined)) throw new RegistryError('E_INVALID', 'A client certificate needs its key and a key its certificate: set both WSREG_ETCD_CERT and WSREG_ETCD_KEY (or the cert and key options).')
  if ((ca || cert) && !address.tls) throw new RegistryError('E_INVALID', `Certificates were given for ${address.display}, which does not use TLS: write etcds:// to use them.`)
  // Without a CA the client trusts the system's roots (grpc's default), as a browser would.
  if (ca || cert) access.credentials = { rootCertificate: ca as Buffer, privateKey: key, certChain: cert }
  return access
}
