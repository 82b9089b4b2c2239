--- synaptic: persistent memory for a mesh of neural micro-experts.
-- The C core (synaptic.core) does storage, encoding and compression; this
-- front end gathers it into one module and keeps the Lua-side helpers.
local core = require "synaptic.core"

local synaptic = {
  version = core.version,
  uuid = core.uuid,
  floats = core.floats,
  codecs = core.codecs,
  compress = core.compress,
  decompress = core.decompress,
  list_backups = core.list_backups,
  restore_backup = core.restore_backup,
  verify_backup = core.verify_backup,
  delete_backup = core.delete_backup,
  purge_old_backups = core.purge_old_backups,
  salvage = core.salvage,
  now = core.now,
}

--- Open (or create) a store. Returns the store, or nil and a message.
-- opts: compression (true/false or codec name), sync_writes, write_buffer_mb,
-- cache_mb, read_only, max_weight_versions, blob_files, recover; with
-- recover, a second result says what a damaged WAL made it drop. The C
-- function itself, not a Lua wrapper: its argument and option errors then
-- point at the caller's line, not at this file.
synaptic.open = core.open

--- The persistent micro-expert runtime: synaptic.runtime(path [, config]).
function synaptic.runtime(path, config)
  return require("synaptic.runtime").open(path, config)
end

--- P2P: synaptic.p2p_config(t) validates a P2PSyncConfig and fills in
-- defaults; synaptic.sync_engine(store, config) is the transport-free
-- engine; synaptic.node(store, config) adds the ZeroMQ transport.
function synaptic.p2p_config(t)
  return require("synaptic.p2p").config(t)
end

function synaptic.sync_engine(store, config)
  return require("synaptic.p2p").sync_engine(store, config)
end

function synaptic.node(store, config)
  return require("synaptic.p2p").node(store, config)
end

--- A CURVE key pair as Z85 strings: public, secret.
function synaptic.keypair()
  if not core.keypair then error("synaptic was built without CURVE support", 2) end
  return core.keypair()
end

return synaptic
