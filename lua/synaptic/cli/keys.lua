--- Key files: what `synaptic keygen` writes and `synaptic serve --key`
-- reads (one format, read and written here and in keygen.lua):
--
--   # synaptic CURVE keypair: keep this file secret (mode 0600)
--   public = <40 Z85 characters>
--   secret = <40 Z85 characters>
--
-- and --authorized files: public keys, one a line, '#' comments.
local common = require "synaptic.cli.common"

local fail = common.fail

local keys = {}

local KEY_LEN = 40
-- Z85's alphabet (ZeroMQ RFC 32)
local Z85 = "^[0-9a-zA-Z%.%-:%+=%^!/%*%?&<>%(%)%[%]{}@%%%$#]+$"

function keys.is_key(s)
  return type(s) == "string" and #s == KEY_LEN and s:match(Z85) ~= nil
end

--- The text of a key file.
function keys.format(public, secret)
  return ("# synaptic CURVE keypair: keep this file secret (mode 0600)\npublic = %s\nsecret = %s\n")
         :format(public, secret)
end

--- public, secret from a key file; fails naming the file and what is wrong.
function keys.read_keyfile(path)
  local f, err = io.open(path, "rb")
  if not f then fail("--key: cannot read '%s': %s", path, err) end
  local text = f:read("a") or ""
  f:close()
  local found = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local name, value = line:match("^%s*(%a+)%s*=%s*(%S+)%s*$")
    if name == "public" or name == "secret" then found[name] = value end
  end
  for _, name in ipairs { "public", "secret" } do
    if not keys.is_key(found[name]) then
      fail("--key: '%s' has no %s key (a line '%s = <40 Z85 characters>'; see synaptic keygen)",
           path, name, name)
    end
  end
  return found.public, found.secret
end

--- The public keys in a file, one a line. A line whose first character
-- (after blanks) is '#' is a comment, and so is what follows a key after a
-- blank and '#'. Not any '#': Z85 keys contain it (about 38% of them).
function keys.read_authorized(path)
  local f, err = io.open(path, "rb")
  if not f then fail("--authorized: cannot read '%s': %s", path, err) end
  local list, n = {}, 0
  for line in f:lines() do
    n = n + 1
    local t = line:match("^%s*(.-)%s*$")
    if t ~= "" and t:sub(1, 1) ~= "#" then
      local k, rest = t:sub(1, 40), t:sub(41)
      if not keys.is_key(k) or not (rest == "" or rest:match("^%s+#")) then
        f:close()
        fail("--authorized: '%s' line %d is not a 40-character Z85 key", path, n)
      end
      list[#list + 1] = k
    end
  end
  f:close()
  return list
end

return keys
