"""Runs the Argo CD health check (Lua) on objects given as a JSON list; prints the results."""
import json
import sys

from lupa import LuaRuntime

script = open(sys.argv[1], encoding="utf-8").read()
objects = json.loads(sys.argv[2])
lua = LuaRuntime(unpack_returned_tuples=True)
check = lua.eval("function(obj) " + script + " end")
results = []
for obj in objects:
    hs = check(lua.table_from(obj, recursive=True))
    results.append({"status": hs["status"], "message": hs["message"]})
print(json.dumps(results))
