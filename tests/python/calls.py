"""Makes chat completion calls with the official `openai` client and reports what happened.

Usage: calls.py BASE KEY SPEC_JSON, where SPEC_JSON is a list of calls:
  {"model": M, "stream": bool, "max_tokens": N, "repeat": K, "read_chunks": R (stream: stop and close after R)}
Prints one JSON line per call: {"ok", "status", "error", "code", "chunks", "text", "backend"}.
"""
import json
import sys

import openai

base, key, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)

for call in spec:
    for _ in range(call.get("repeat", 1)):
        out = {"ok": False, "status": None, "error": None, "code": None, "chunks": 0, "text": "", "backend": None}
        try:
            args = dict(model=call["model"], messages=[{"role": "user", "content": "hello"}],
                        max_tokens=call.get("max_tokens", 5), extra_body={"ignore_eos": True})
            if call.get("stream"):
                raw = client.chat.completions.with_raw_response.create(stream=True, **args)
                out["backend"] = raw.headers.get("x-tollgate-backend")
                stream = raw.parse()
                for chunk in stream:
                    out["chunks"] += 1
                    if chunk.choices and chunk.choices[0].delta.content:
                        out["text"] += chunk.choices[0].delta.content
                    if call.get("read_chunks") and out["chunks"] >= call["read_chunks"]:
                        stream.close()
                        break
                out["ok"] = True
            else:
                raw = client.chat.completions.with_raw_response.create(**args)
                out["backend"] = raw.headers.get("x-tollgate-backend")
                out["text"] = raw.parse().choices[0].message.content
                out["ok"] = True
        except openai.APIStatusError as e:
            out.update(status=e.status_code, error=str(e), code=(e.body or {}).get("code") if isinstance(e.body, dict) else None)
        except openai.APIError as e:
            out.update(error=str(e))
        print(json.dumps(out), flush=True)
