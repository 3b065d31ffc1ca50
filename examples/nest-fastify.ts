/**
 * NestJS on Fastify (@nestjs/platform-fastify) with the node-accelerator/fastify plugin:
 * `npx tsx examples/nest-fastify.ts` (`PORT` to change 3000), then
 *
 *   curl -i localhost:3000/posts/1      # twice: a miss, then a hit ("renders" stays 1)
 *   curl -X PUT -H 'content-type: application/json' -d '{"title":"Edited"}' localhost:3000/posts/1
 *   curl -i localhost:3000/posts/1      # a miss again: the edit purged tag post:1
 *
 * `app.register(accelerator)` before `listen()` registers the plugin on Nest's Fastify instance,
 * before Nest adds its routes: a hit or a 304 is answered in Fastify's onRequest hook, before
 * body parsing, guards, pipes, interceptors and the controller. A route opts in with
 * `@RouteConfig({ cacheFor, tags })` (Fastify's route `config`) or, per request,
 * `reply.cacheFor` / `reply.tags`; purges go through `request.server.accelerator` (the Fastify
 * instance's `accelerator`). `app.close()` closes the cache with Fastify.
 * `createApp()` is what the tests start; run as a program, this file listens and closes on
 * SIGINT/SIGTERM (Nest's shutdown hooks).
 */
import 'reflect-metadata'
import {
  Body,
  Controller,
  Get,
  Header,
  Headers,
  Module,
  NotFoundException,
  Param,
  Put,
  Req,
  Res,
  type NestApplicationOptions,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter, RouteConfig, type NestFastifyApplication } from '@nestjs/platform-fastify'
import type { FastifyContextConfig, FastifyReply, FastifyRequest } from 'fastify'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import accelerator, { type FastifyAcceleratorOptions } from '../src/frameworks/fastify.js'

@Controller()
class PostsController {
  /** The "database". */
  readonly #posts = new Map([
    ['1', { title: 'Hello, cache', version: 1 }],
    ['2', { title: 'Tags drop what changed', version: 1 }],
  ])
  /** How many times `show` ran per post: a hit does not run it, so does not count. */
  readonly #renders = new Map<string, number>()

  @Get('posts/:id')
  @RouteConfig({
    cacheFor: 60, // seconds
    // What invalidates it. The route's config covers its 404s too: an unknown post's is stored,
    // tagged post:<id>, until that tag is purged (when the post is created, say).
    tags: (request) => [`post:${(request.params as { id: string }).id}`, 'posts'],
  } satisfies FastifyContextConfig)
  show(@Param('id') id: string) {
    const post = this.#posts.get(id)
    if (!post) throw new NotFoundException(`No post ${id}: try /posts/1`)
    const renders = (this.#renders.get(id) ?? 0) + 1
    this.#renders.set(id, renders)
    return { id, ...post, renders }
  }

  @Put('posts/:id')
  async edit(
    @Param('id') id: string,
    @Body() body: { title?: string },
    @Req() request: FastifyRequest,
  ) {
    const post = this.#posts.get(id)
    if (!post) throw new NotFoundException(`No post ${id}: try /posts/1`)
    this.#posts.set(id, { title: body.title ?? post.title, version: post.version + 1 })
    // Every page that showed this post, and nothing else, in every process sharing the store.
    return { purged: await request.server.accelerator.invalidateTags([`post:${id}`]) }
  }

  /** One entry per language: `Vary` names the request header the response depends on. */
  @Get('greeting')
  @Header('Vary', 'Accept-Language')
  greet(
    @Headers('accept-language') language = '',
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    reply.cacheFor = 300 // per request: wins over the route's config
    return language.startsWith('fr') ? 'bonjour' : 'hello'
  }
}

@Module({ controllers: [PostsController] })
class AppModule {}

/** The app, not listening yet, with the plugin registered before its routes. */
export async function createApp(
  options: FastifyAcceleratorOptions = {},
  nest: NestApplicationOptions = {},
): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule,
    new FastifyAdapter(),
    nest,
  )
  await app.register(accelerator, options)
  return app
}

/** `npx tsx examples/nest-fastify.ts`: listens on PORT (3000), closes on SIGINT/SIGTERM. */
export async function main(port = Number(process.env.PORT ?? 3000)) {
  const app = await createApp()
  app.enableShutdownHooks()
  await app.listen(port)
  const actual = (app.getHttpServer().address() as AddressInfo).port
  console.log(`NestJS (Fastify) with node-accelerator on http://localhost:${actual}/posts/1`)
  return app
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
