/**
 * mailkey's layering, checked by `npm run check:deps` (part of `npm test`). The layers, bottom up
 * (CONTRIBUTING.md has the diagram):
 *
 *   core/, errors.ts      imports nothing of mailkey
 *   domain/               core/, errors.ts, provider data types only
 *   config/, providers/, sasl/, protocols/, upstream/
 *   oauth/, store/        side by side: neither imports the other
 *   broker/
 *   proxy/, probe/, recipes/, serve/ (the token service), remote/ (its client)
 *   mailkey.ts, index.ts  the facade
 *   cli/                  on top; nothing imports it
 *
 * A layer may import any layer below it, never one above. No cycles, type-only imports included
 * (tsPreCompilationDeps). protocols/ and sasl/ are pure: no sockets.
 */

/** a path regex for src/ folders ('core/') and files ('errors.ts') */
const under = (...parts) =>
  `^src/(${parts.map((p) => (p.endsWith('/') ? p : `${p.replace(/\./g, '\\.')}$`)).join('|')})`

const FACADE = ['mailkey.ts', 'index.ts']
const SERVICES = ['proxy/', 'probe/', 'recipes/', 'serve/', 'remote/']
const ABOVE_BASE = ['oauth/', 'store/', 'broker/', ...SERVICES, ...FACADE, 'cli/']

/** `from` may import nothing in `to`. */
const upward = (name, comment, from, to) => ({
  name,
  comment,
  severity: 'error',
  from: { path: under(...from) },
  to: { path: under(...to) },
})

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only ones included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment: 'Every import resolves (else the rules below would not see it).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'nothing-imports-cli',
      comment: 'cli/ is the top: only cli/ itself imports cli/.',
      severity: 'error',
      from: { pathNot: under('cli/') },
      to: { path: under('cli/') },
    },
    {
      name: 'pure-protocols-and-sasl',
      comment: 'protocols/ and sasl/ are bytes in, actions out: they open no sockets.',
      severity: 'error',
      from: { path: under('protocols/', 'sasl/') },
      to: { dependencyTypes: ['core'], path: '^(node:)?(net|tls|http|https|http2|dgram)$' },
    },
    {
      name: 'core-imports-nothing',
      comment: 'core/ and errors.ts are the bottom: they import nothing of mailkey but each other.',
      severity: 'error',
      from: { path: under('core/', 'errors.ts') },
      to: { path: '^src/', pathNot: under('core/', 'errors.ts') },
    },
    {
      name: 'domain-is-a-leaf',
      comment: 'domain/ imports only core/, errors.ts and the provider data types.',
      severity: 'error',
      from: { path: under('domain/') },
      to: { path: '^src/', pathNot: under('domain/', 'core/', 'errors.ts', 'providers/types.ts') },
    },
    upward(
      'base-layers-stay-down',
      'config/, providers/, sasl/, protocols/ and upstream/ do not import the layers above them.',
      ['config/', 'providers/', 'sasl/', 'protocols/', 'upstream/'],
      ABOVE_BASE,
    ),
    upward(
      'oauth-stays-down',
      'oauth/ never touches the store, the broker, or anything above.',
      ['oauth/'],
      ABOVE_BASE.filter((l) => l !== 'oauth/'),
    ),
    upward(
      'store-stays-down',
      'store/ knows nothing of OAuth, the broker, or anything above.',
      ['store/'],
      ['oauth/', 'broker/', ...SERVICES, ...FACADE, 'cli/'],
    ),
    upward(
      'broker-stays-down',
      'broker/ does not import the services (proxy, probe, recipes, token service and its client), the facade or the CLI.',
      ['broker/'],
      [...SERVICES, ...FACADE, 'cli/'],
    ),
    {
      name: 'services-below-facade',
      comment:
        'proxy/, probe/, recipes/, serve/ and remote/ do not import the facade (mailkey.ts, index.ts). ' +
        'issue 12: the exceptions go when the proxy and the probe take a narrow token source ' +
        'instead of Mailkey (the broker/facade split in progress); remove them at the merge.',
      severity: 'error',
      from: {
        path: under(...SERVICES),
        pathNot: under('proxy/server.ts', 'proxy/upstream.ts', 'probe/run.ts'),
      },
      to: { path: under(...FACADE) },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
}
