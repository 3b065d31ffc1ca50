/**
 * RedisStore's Lua scripts, by command name. Each touches keys of one slot only (they share a
 * hash tag), so every script runs on Redis Cluster too. See redis.ts for the key layout, and
 * redis-frame.ts for an entry's bytes (1-based in Lua: the checkpoint is bytes 20..35 of the
 * head, staleAt 3..18, the soft flag 19, the meta's and tags' lengths 36..45 and 46..55).
 */
/**
 * `drop(key, n, soft, now, first)`: drops (soft: marks stale at `now`) the entry at `key` when it
 * was generated before `n` and carries one of the tags in ARGV[first..] (each as JSON.stringify
 * encodes it; none: any). The tag test searches the stored JSON array for the encoded tag as a
 * plain substring opened by `[` or `,` and closed by `,` or `]`, not with cjson: inside a JSON
 * string every quote is escaped, so a quote after `[` or `,` always opens an element, and from
 * there the encoded tag matches exactly one whole element or none.
 */
export const DROP_LUA = `
  local function carries(tags, encoded)
    local from = 1
    while true do
      local s, e = string.find(tags, encoded, from, true)
      if not s then return false end
      local before, after = string.byte(tags, s - 1), string.byte(tags, e + 1)
      if (before == 91 or before == 44) and (after == 93 or after == 44) then return true end
      from = s + 1
    end
  end
  local function drop(key, n, soft, now, first)
    local head = redis.call('GETRANGE', key, 0, 54)
    if #head < 55 or tonumber(string.sub(head, 20, 35)) >= n then return 0 end
    if first <= #ARGV then
      local metaLength, tagsLength = tonumber(string.sub(head, 36, 45)), tonumber(string.sub(head, 46, 55))
      local tags = redis.call('GETRANGE', key, 55 + metaLength, 54 + metaLength + tagsLength)
      local found = false
      for i = first, #ARGV do
        if carries(tags, ARGV[i]) then found = true break end
      end
      if not found then return 0 end
    end
    if soft == '1' then
      -- now: right-aligned in 16 bytes by the caller, as staleAt is.
      if tonumber(string.sub(head, 3, 18)) > tonumber(now) then redis.call('SETRANGE', key, 2, now) end
      redis.call('SETRANGE', key, 18, '1')
    else
      redis.call('UNLINK', key)
    end
    return 1
  end`

/**
 * Lua scripts by command name: how many of their arguments are keys (undefined: the caller says,
 * as its first argument), and the script.
 */
export const SCRIPTS = {
  // KEYS: entry, key record. ARGV: since, provisional ttl, the entry's frame.
  accSet: [
    2,
    `
    local deleted = redis.call('GET', KEYS[2])
    if deleted and tonumber(deleted) > tonumber(ARGV[1]) then return 0 end
    redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
    return 1`,
  ],
  // KEYS: entry. ARGV: its checkpoint, ttl. Makes the entry written by this set readable (`a0`
  // -> `a1`) and gives it its full TTL.
  accCommit: [
    1,
    `
    if tonumber(redis.call('GETRANGE', KEYS[1], 19, 34)) == tonumber(ARGV[1]) then
      redis.call('SETRANGE', KEYS[1], 1, '1')
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
    return 1`,
  ],
  // KEYS: tag index, tag record. ARGV: key, expiresAt, trim below, ttl. Returns the tag's record.
  accIndex: [
    2,
    `
    redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
    return tonumber(redis.call('GET', KEYS[2]) or '0')`,
  ],
  // KEYS: sequence. ARGV: ttl. Monotonic even when Redis restarts empty: never below Redis TIME.
  accBump: [
    1,
    `
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local n = redis.call('INCR', KEYS[1])
    if n < now then
      n = now
      redis.call('SET', KEYS[1], string.format('%.0f', n))
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return n`,
  ],
  // KEYS: a record. ARGV: n, ttl. Raises the record to n (never lowers it).
  accRaise: [
    1,
    `
    if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
    return 1`,
  ],
  // KEYS: tag index, tag record. ARGV: n, ttl, trim below, most members returned. Records n;
  // returns the tagged keys, or nil when there are more than that (the caller pages with ZSCAN).
  accInvalidateTag: [
    2,
    `
    if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
    if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[4]) then return false end
    return redis.call('ZRANGE', KEYS[1], 0, -1)`,
  ],
  // KEYS: entry. ARGV: n, soft, now, then the invalidated tags (none: any). Drops (or marks
  // stale) the entry if it was generated before n and carries one of the tags.
  accDrop: [
    1,
    DROP_LUA +
      `
    return drop(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], 4)`,
  ],
  // The same for many entries at once (KEYS: entries), on a single Redis only: in a Cluster the
  // entries live in slots of their own, so each goes by accDrop. Returns how many it dropped.
  accDropMany: [
    undefined,
    DROP_LUA +
      `
    local dropped = 0
    for i = 1, #KEYS do dropped = dropped + drop(KEYS[i], tonumber(ARGV[1]), ARGV[2], ARGV[3], 4) end
    return dropped`,
  ],
  // KEYS: entry, key record. ARGV: n, ttl. Records the delete, drops an entry generated before it.
  accDelete: [
    2,
    `
    if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
    local generated = tonumber(redis.call('GETRANGE', KEYS[1], 19, 34))
    if not generated or generated >= tonumber(ARGV[1]) then return 0 end
    redis.call('UNLINK', KEYS[1])
    return 1`,
  ],
  // Leases (redis-lease.ts). KEYS: lease, entry, waiters mark. ARGV: token, ttl, ifAbsent.
  // -2: the entry exists (ifAbsent); -1: the lease is now the caller's; else the holder's PTTL,
  // and the lease is marked as waited on (for as long as it lives), so that its release publishes.
  accLease: [
    3,
    `
    if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
    if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
    local left = math.max(redis.call('PTTL', KEYS[1]), 1)
    redis.call('SET', KEYS[3], '1', 'PX', left)
    return left`,
  ],
  // KEYS: lease, waiters mark. ARGV: token, ttl. Extends the lease (and its mark) while it is
  // still the caller's.
  accRenew: [
    2,
    `
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])`,
  ],
  // KEYS: lease, waiters mark. ARGV: channel, token, message. Deletes the lease while it is still
  // the caller's; wakes the waiters in every process when there are any (a miss nobody waited
  // on publishes nothing, so processes do not hear of every miss in the fleet).
  accRelease: [
    2,
    `
    if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
    if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[1], ARGV[3]) end
    return 1`,
  ],
} as const satisfies Record<string, readonly [keys: number | undefined, lua: string]>

export type Scripted = Record<
  keyof typeof SCRIPTS,
  (...args: Array<string | number | Buffer>) => Promise<unknown>
>
