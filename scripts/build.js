#!/usr/bin/env node
// `npm run build` (also `prepare`, `prestart`, `pretest`, `prebench` and the tests' global setup):
// everything the hub runs, in dist/, so that nothing is compiled or bundled at run time.
//
// 1. Every TypeScript file under src/ and adapters/ (and bench/embedded-hub.ts) becomes
//    dist/<same path>.js (esbuild, one file at a time, no bundling; relative imports of `.ts`
//    files are rewritten to `.js`). The trees are walked whole: moving or adding a file needs no
//    change here.
// 2. Every other file there (SQL migrations, Lua scripts, …) is copied beside them.
// 3. The web widget is bundled to dist/widget/widget.js, the agent console to dist/console/.
// 5. The typed client's declarations go to dist/client/ (`switchboard/client`'s types).
// 4. The embedded database's template (a data directory after initdb and every migration) is made
//    once per PGlite version, and again when a migration changes: dist/pglite-template-<version>/.
// 6. The command's bundle, dist/bundle/: `bin/switchboard.js` runs it (see there).
// 7. The API reference's script (Scalar's standalone build) is copied to dist/docs/scalar.js.
//
// Incremental: a file is compiled or copied only when its source is newer than its output, a
// bundle is rebuilt only when one of its inputs is; outputs whose source is gone are removed. No
// type checking here (`npm run typecheck`). Without esbuild (an install without dev
// dependencies), an existing dist/ is used as it is.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const TREES = ['src', 'adapters'];
// Files outside the trees that run compiled all the same: the embedded benchmark's hub process
// (no tsx in the process whose memory the benchmark reads) and the envelopes it shares with
// bench/run.ts, and the tracing path's processes (a fresh process each, measured as the hub's
// processes run). Their imports of src/ and adapters/ point into dist/ as they do from bench/.
const FILES = ['bench/embedded-hub.ts', 'bench/envelope.ts', 'bench/tracing-path-process.ts'];
const quiet = process.argv.includes('--quiet');
const say = (line) => quiet || process.stderr.write(`build: ${line}\n`);

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  // What bin/switchboard.js runs (step 6).
  if (fs.existsSync(path.join(dist, 'bundle', 'cli.js'))) {
    say('esbuild is not installed (no dev dependencies): using dist/ as it is');
    process.exit(0);
  }
  process.stderr.write(
    'build: esbuild is not installed and there is no dist/: install with dev dependencies, or copy a built dist/ here\n',
  );
  process.exit(1);
}

const isSource = (file) => /\.tsx?$/.test(file) && !file.endsWith('.d.ts');
const outputOf = (rel) => path.join(dist, isSource(rel) ? rel.replace(/\.tsx?$/, '.js') : rel);
const mtime = (file) => {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
};

function walk(dir, rel = '') {
  const files = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = path.join(rel, entry.name);
    if (entry.isDirectory()) files.push(...walk(dir, child));
    else if (entry.isFile()) files.push(child);
  }
  return files;
}

// 1 and 2: compile and copy what changed.
const sources = [
  ...TREES.flatMap((tree) => walk(root, tree)),
  ...FILES.filter((rel) => fs.existsSync(path.join(root, rel))),
];
const stale = sources.filter((rel) => mtime(path.join(root, rel)) > mtime(outputOf(rel)));
const toCompile = stale.filter(isSource);
const toCopy = stale.filter((rel) => !isSource(rel));
// `./x.ts`, `../y/z.tsx` in static imports, re-exports and import() calls.
const RELATIVE_TS = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"'\n]*?)\.tsx?\2/g;
if (toCompile.length > 0) {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: toCompile,
    outdir: dist,
    outbase: root,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    write: false,
    logLevel: 'warning',
  });
  for (const file of result.outputFiles) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true });
    fs.writeFileSync(file.path, file.text.replace(RELATIVE_TS, '$1$2$3.js$2'));
  }
}
for (const rel of toCopy) {
  fs.mkdirSync(path.dirname(outputOf(rel)), { recursive: true });
  fs.copyFileSync(path.join(root, rel), outputOf(rel));
}
// Outputs whose source is gone (a file moved or deleted).
const expected = new Set(sources.map(outputOf));
let removed = 0;
for (const tree of TREES) {
  if (!fs.existsSync(path.join(dist, tree))) continue;
  for (const rel of walk(dist, tree)) {
    const file = path.join(dist, rel);
    if (!expected.has(file)) {
      fs.rmSync(file);
      removed++;
    }
  }
}
if (stale.length + removed > 0)
  say(`${toCompile.length} compiled, ${toCopy.length} copied, ${removed} removed`);

/** True when `output` is older than any of `inputs` (files or directories, walked). */
function outdated(output, inputs) {
  const built = mtime(output);
  if (built < 0) return true;
  for (const input of inputs) {
    const abs = path.join(root, input);
    if (!fs.existsSync(abs)) continue;
    const files = fs.statSync(abs).isDirectory() ? walk(abs).map((f) => path.join(abs, f)) : [abs];
    if (files.some((f) => mtime(f) > built)) return true;
  }
  return false;
}

// 3. The widget, through the compiled module that knows how (adapters/web/bundle.ts).
const widgetOut = path.join(dist, 'widget', 'widget.js');
const bundleModule = path.join(dist, 'adapters', 'web', 'bundle.js');
if (outdated(widgetOut, ['adapters/web', 'package-lock.json'])) {
  const { bundleWidget } = await import(pathToFileURL(bundleModule).href);
  fs.mkdirSync(path.dirname(widgetOut), { recursive: true });
  fs.writeFileSync(widgetOut, await bundleWidget());
  say('widget bundled');
}

const consoleOut = path.join(dist, 'console', 'app.js');
if (outdated(consoleOut, ['console', 'scripts/build-console.js', 'package-lock.json'])) {
  await import(pathToFileURL(path.join(root, 'scripts', 'build-console.js')).href);
  say('console bundled');
}

// 7. The API reference's script (`/docs/assets/scalar.js`): Scalar's standalone build, copied
//    here so that the hub serves it from dist/ and its package (Vue, CodeMirror, an AI SDK, …:
//    `npm ci --omit=dev` installs 411 MB without it, 771 with it) is a dev dependency only.
const scalarOut = path.join(dist, 'docs', 'scalar.js');
let scalarIn;
try {
  scalarIn = path.join(
    path.dirname(createRequire(import.meta.url).resolve('@scalar/api-reference')),
    'browser',
    'standalone.js',
  );
} catch {
  // An install without dev dependencies (tsx brings esbuild, so the rest builds): a shipped
  // dist/ keeps its copy.
  if (fs.existsSync(scalarOut))
    say('@scalar/api-reference is not installed: dist/docs/scalar.js is left as it is');
  else
    process.stderr.write(
      'build: @scalar/api-reference is not installed and dist/docs/scalar.js is missing: /docs will not work (build with the dev dependencies, or copy a built dist/ here)\n',
    );
}
// The lock file too: an upgrade may keep the file's time from the package's tarball.
if (scalarIn && (mtime(scalarIn) > mtime(scalarOut) || outdated(scalarOut, ['package-lock.json']))) {
  fs.mkdirSync(path.dirname(scalarOut), { recursive: true });
  fs.copyFileSync(scalarIn, scalarOut);
  say('API reference script copied');
}

// 5. The typed client's declarations (`switchboard/client` from plain Node or another project:
//    package.json `exports` gives dist/src/client/index.js and these types). Outside dist/src,
//    where the clean-up above would take them for outputs without a source. TypeScript is a dev
//    dependency: without it, existing declarations stay as they are.
const clientTypes = path.join(dist, 'client', 'index.d.ts');
if (outdated(clientTypes, ['src/client/index.ts', 'src/client/api.ts'])) {
  let ts;
  try {
    ts = (await import('typescript')).default;
  } catch {
    say('typescript is not installed: the client declarations in dist/client are left as they are');
  }
  if (ts) {
    const program = ts.createProgram([path.join(root, 'src', 'client', 'index.ts')], {
      declaration: true,
      emitDeclarationOnly: true,
      allowImportingTsExtensions: true,
      outDir: path.dirname(clientTypes),
      rootDir: path.join(root, 'src', 'client'),
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
      verbatimModuleSyntax: true,
      types: [],
    });
    const emitted = program.emit(undefined, (file, text) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      // `./api.ts` in the sources; `./api.js` (its declarations: api.d.ts) for a consumer.
      fs.writeFileSync(file, text.replace(RELATIVE_TS, '$1$2$3.js$2'));
    });
    if (emitted.emitSkipped) throw new Error('build: the client declarations could not be emitted');
    say('client declarations: dist/client');
  }
}

// 4. The embedded database's template, through the compiled store module.
const pglite = await import(pathToFileURL(path.join(dist, 'src', 'store', 'pglite.js')).href);
const template = await pglite.pgliteTemplateDir();
// The core's migrations and each channel's own (adapters/<name>/migrations/).
const migrationDirs = [
  'src/store/migrations',
  ...fs.readdirSync(path.join(root, 'adapters')).map((name) => path.join('adapters', name, 'migrations')),
];
if (outdated(path.join(template, 'PG_VERSION'), migrationDirs)) {
  // Registers every channel, so that their migrations are in the template too.
  await import(pathToFileURL(path.join(dist, 'adapters', 'index.js')).href);
  say(`the embedded database's template (initdb and migrations): ${path.relative(root, template)}`);
  await pglite.writePgliteTemplate(template);
  // Templates of other PGlite versions are of no use any more.
  for (const entry of fs.readdirSync(dist)) {
    const abs = path.join(dist, entry);
    if (entry.startsWith('pglite-template-') && abs !== template)
      fs.rmSync(abs, { recursive: true, force: true });
  }
}

// 6. The command's bundle: src/cli.ts and everything it imports of ours (and zod and Hono, ESM
//    packages of ~130 small modules), as a few files: `switchboard start` loaded ~400 modules one
//    by one before /readyz, and Node's ESM loader costs ~0.3 ms of CPU per module on top of
//    compiling it (README, "Performance"). What a module imports lazily (`import()`) stays lazy,
//    in a chunk of its own. The other packages stay where they are (CommonJS, native code, files
//    of their own), and so do the per-file outputs above: each module's `import.meta.url` here
//    names its file there, so the files it finds beside itself (migrations, Lua scripts) are found.
const bundleDir = path.join(dist, 'bundle');
const BUNDLED_PACKAGES = /^(zod|hono|@hono\/node-server)(\/|$)/;
if (outdated(path.join(bundleDir, 'cli.js'), [...TREES, 'package-lock.json', 'scripts/build.js'])) {
  const ownFile = new RegExp(
    `^${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(${TREES.join('|')})/.*\\.tsx?$`,
  );
  // Chunks are named by their content: the last build's are of no use.
  fs.rmSync(bundleDir, { recursive: true, force: true });
  await esbuild.build({
    absWorkingDir: root,
    // bin/switchboard.js begins the embedded database's compile through the second entry before
    // it loads the first: one module in a chunk both share, so the hub finds the compile begun.
    entryPoints: { cli: 'src/cli.ts', 'pglite-early': 'src/store/pglite-early.ts' },
    outdir: bundleDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Error classes are told apart by name (src/cli.ts): a name clash between modules must not rename one.
    keepNames: true,
    sourcemap: 'linked',
    logLevel: 'warning',
    plugins: [
      {
        name: 'switchboard-bundle',
        setup(build) {
          // Packages stay outside, but for the few bundled.
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            BUNDLED_PACKAGES.test(args.path) ? undefined : { path: args.path, external: true },
          );
          build.onLoad({ filter: ownFile }, (args) => {
            const rel = path.relative(root, args.path).replace(/\.tsx?$/, '.js');
            const url = JSON.stringify(path.posix.join('..', ...rel.split(path.sep)));
            const text = fs.readFileSync(args.path, 'utf8');
            return {
              contents: text.replace(/\bimport\.meta\.url\b/g, `new URL(${url}, import.meta.url).href`),
              loader: args.path.endsWith('x') ? 'tsx' : 'ts',
            };
          });
        },
      },
    ],
  });
  say('the command bundled: dist/bundle/');
}
