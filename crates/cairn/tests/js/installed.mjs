// Exit 0 when every dependency in package.json is installed at its pinned
// version and loads; else print what is wrong and exit 1. Run by
// crates/cairn/tests/it/js.rs before the JavaScript client tests.

import { existsSync, readFileSync } from 'node:fs';

if (!existsSync(new URL('./node_modules', import.meta.url))) {
  console.log('tests/js/node_modules is missing');
  process.exit(1);
}
const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url)));
const wrong = [];
for (const [name, pinned] of Object.entries(read('./package.json').dependencies)) {
  let installed;
  try {
    installed = read(`./node_modules/${name}/package.json`).version;
  } catch {
    wrong.push(`${name} is not installed`);
    continue;
  }
  if (installed !== pinned) {
    wrong.push(`${name} ${installed} is installed, ${pinned} is pinned`);
    continue;
  }
  try {
    await import(name);
  } catch (e) {
    wrong.push(`${name} does not load: ${e.message}`);
  }
}
if (wrong.length > 0) {
  console.log(wrong.join('; '));
  process.exit(1);
}
