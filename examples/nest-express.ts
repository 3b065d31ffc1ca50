/**
 * NestJS on Express (@nestjs/platform-express) with node-accelerator as Express middleware:
 * `npx tsx examples/nest-express.ts` (`PORT` to change 3000), then
 *
 *   curl -i localhost:3000/posts/1      # twice: a miss, then a hit ("renders" stays 1)
 *   curl -X PUT -H 'content-type: application/json' -d '{"title":"Edited"}' localhost:3000/posts/1
 *   curl -i localhost:3000/posts/1      # a miss again: the edit purged tag post:1
 *
 * `app.use(cache)` before `listen()` puts the accelerator in front of everything Nest adds: a hit
 * or a 304 is answered before body parsing, guards, pipes, interceptors and the controller. A
 * route opts in with `res.locals.cacheFor` / `res.locals.tags` on the Express response
 * (`@Res({ passthrough: true })` keeps Nest sending what the method returns).
 * `createApp()` is what the tests start; run as a program, this file listens and closes on
 * SIGINT/SIGTERM (Nest's shutdown hooks, which close the cache too).
 */
import 'reflect-metadata'
import {
  Body,
  Controller,
  Get,
  Header,
  Headers,
  Inject,
  Injectable,
  Module,
  NotFoundException,
  Param,
  Put,
  Res,
  type NestApplicationOptions,
  type OnApplicationShutdown,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import type { NestExpressApplication } from '@nestjs/platform-express'
import type { Response } from 'express'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { accelerate, type AccelerateOptions } from '../src/index.js'

/** Options for the accelerator, for Nest's injector. */
const CACHE_OPTIONS = Symbol('node-accelerator options')

/** The accelerator as a Nest provider: one per app, closed when the app closes. */
@Injectable()
export class Cache implements OnApplicationShutdown {
  readonly middleware: ReturnType<typeof accelerate.middleware>
  // Tokens named with @Inject: nothing here relies on emitted decorator metadata.
  constructor(@Inject(CACHE_OPTIONS) options: AccelerateOptions) {
    this.middleware = accelerate.middleware(options)
  }
  /** `app.close()`: waits for responses still being stored, then closes the store. */
  onApplicationShutdown() {
    return this.middleware.close()
  }
}

@Controller()
class PostsController {
  /** The "database". */
  readonly #posts = new Map([
    ['1', { title: 'Hello, cache', version: 1 }],
    ['2', { title: 'Tags drop what changed', version: 1 }],
  ])
  /** How many times `show` ran per post: a hit does not run it, so does not count. */
  readonly #renders = new Map<string, number>()

  constructor(@Inject(Cache) private readonly cache: Cache) {}

  @Get('posts/:id')
  show(@Param('id') id: string, @Res({ passthrough: true }) res: Response) {
    const post = this.#posts.get(id)
    // Not stored: nothing opted in.
    if (!post) throw new NotFoundException(`No post ${id}: try /posts/1`)
    const renders = (this.#renders.get(id) ?? 0) + 1
    this.#renders.set(id, renders)
    res.locals.cacheFor = 60 // seconds
    res.locals.tags = [`post:${id}`, 'posts'] // what invalidates it
    return { id, ...post, renders }
  }

  @Put('posts/:id')
  async edit(@Param('id') id: string, @Body() body: { title?: string }) {
    const post = this.#posts.get(id)
    if (!post) throw new NotFoundException(`No post ${id}: try /posts/1`)
    this.#posts.set(id, { title: body.title ?? post.title, version: post.version + 1 })
    // Every page that showed this post, and nothing else, in every process sharing the store.
    return { purged: await this.cache.middleware.invalidateTags([`post:${id}`]) }
  }

  /** One entry per language: `Vary` names the request header the response depends on. */
  @Get('greeting')
  @Header('Vary', 'Accept-Language')
  greet(@Headers('accept-language') language = '', @Res({ passthrough: true }) res: Response) {
    res.locals.cacheFor = 300
    return language.startsWith('fr') ? 'bonjour' : 'hello'
  }
}

/** The app, not listening yet, with the accelerator in front of its routes. */
export async function createApp(
  options: AccelerateOptions = {},
  nest: NestApplicationOptions = {},
): Promise<NestExpressApplication> {
  @Module({
    controllers: [PostsController],
    providers: [Cache, { provide: CACHE_OPTIONS, useValue: options }],
  })
  class AppModule {}
  const app = await NestFactory.create<NestExpressApplication>(AppModule, nest)
  // Before listen(): Nest adds its body parsers and routes then, behind this middleware.
  app.use(app.get(Cache).middleware)
  return app
}

/** `npx tsx examples/nest-express.ts`: listens on PORT (3000), closes on SIGINT/SIGTERM. */
export async function main(port = Number(process.env.PORT ?? 3000)) {
  const app = await createApp()
  app.enableShutdownHooks()
  await app.listen(port)
  const actual = (app.getHttpServer().address() as AddressInfo).port
  console.log(`NestJS (Express) with node-accelerator on http://localhost:${actual}/posts/1`)
  return app
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
