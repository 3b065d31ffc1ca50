// `npm test`'s pretest: build tap's Test class for the plugins .taprc lists, from the packages
// npm already installed.
//
// Why not `tap build`: before building, it runs `tap plugin add` for every plugin, which asks
// the npm registry for each plugin's newest version and npm-installs @tapjs/tsx a second time
// into .tap/plugins/ (98 packages): 11 s on a fresh clone and 4 s on every later run, and a
// test run that needs the network. Why build at all before `tap`: when tap finds its Test class
// built for other plugins it rebuilds inside the run, and the first run of a fresh clone then
// loses coverage of a few branches (seen on stores/redis-frame.ts), failing the suite.
//
// The plugin list is the one tap itself computes (@tapjs/config), so the signature `tap`
// checks at start matches and it does not rebuild.
import { TapConfig } from '@tapjs/config'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const config = await TapConfig.load()
const generator = fileURLToPath(import.meta.resolve('@tapjs/test/generate-tap-test-class'))
const { status, signal } = spawnSync(process.execPath, [generator, ...config.pluginList], {
  stdio: 'inherit',
})
if (status !== 0) {
  console.error(
    `tap-build: building tap's Test class for ${config.pluginList.join(', ')} ` +
      `failed (${signal ?? `exit ${status}`}); try \`npx tap build\` to see why`,
  )
  process.exit(1)
}
