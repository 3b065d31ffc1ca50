/**
 * node-accelerator/proxy: the caching reverse proxy's pieces. The \`accelerator\` command is
 * \`accelerate(forward(upstream), { sharedCache: true, surrogateKeys: true })\` with \`purgeApi\`
 * in front of it.
 */
export { forward, type Forwarder, type ForwardOptions } from './forward.js'
export { purgeApi, PURGE_PATH } from './purge.js'
