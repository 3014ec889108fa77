"""The Batch and Files APIs through the official `openai` client.

Usage: batch_client.py BASE KEY LINES
Uploads a JSONL file of LINES chat requests (purpose `batch`), creates a batch, waits for it to
complete, downloads the output file and checks each line against the same request sent alone;
then a batch of Responses API lines (each answered as a Response object), then a file with malformed lines (the batch fails with line-numbered errors and an error file),
a batch for a model the tenant may not use (refused at creation), and the Files API's list,
retrieve and delete. Prints METERED=n: the requests that each leave one ledger row.
"""
import io
import json
import sys
import time

import openai

base, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)
metered = 0


def body(i):
    return {"model": "llama3-8b", "messages": [{"role": "user", "content": f"question {i}"}],
            "max_tokens": 4 + i % 7, "seed": 1000 + i}


def jsonl(lines):
    return io.BytesIO(("\n".join(json.dumps(x) for x in lines) + "\n").encode())


def wait(batch_id, done=("completed", "failed", "expired", "cancelled"), timeout=240):
    deadline = time.time() + timeout
    while True:
        b = client.batches.retrieve(batch_id)
        if b.status in done:
            return b
        assert time.time() < deadline, f"batch still {b.status}: {b.request_counts}"
        time.sleep(0.2)


reqs = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body(i)} for i in range(n)]
f = client.files.create(file=("requests.jsonl", jsonl(reqs)), purpose="batch")
assert f.purpose == "batch" and f.bytes > 0 and f.filename == "requests.jsonl", f
batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"job": "nightly"})
assert batch.status in ("validating", "in_progress"), batch.status
assert batch.metadata == {"job": "nightly"}
b = wait(batch.id)
assert b.status == "completed", b
assert b.request_counts.total == n and b.request_counts.completed == n and b.request_counts.failed == 0, b
assert b.output_file_id and b.error_file_id is None, b
metered += n
out = [json.loads(l) for l in client.files.content(b.output_file_id).text.splitlines()]
assert sorted(o["custom_id"] for o in out) == sorted(r["custom_id"] for r in reqs), "each custom_id once"
# Each answer is what the same request gets alone (the emulator answers a seeded request alike).
for o in out[:: max(1, n // 20)]:
    i = int(o["custom_id"].split("-")[1])
    assert o["response"]["status_code"] == 200 and o["error"] is None, o
    alone = client.chat.completions.create(**body(i))
    metered += 1
    got = o["response"]["body"]["choices"][0]["message"]["content"]
    assert got == alone.choices[0].message.content, (got, alone.choices[0].message.content)
    assert o["response"]["body"]["usage"]["completion_tokens"] == alone.usage.completion_tokens
assert any(x.id == batch.id for x in client.batches.list(limit=5).data)

# A batch of Responses API requests: each line answered as a Response object.
rreqs = [{"custom_id": f"resp-{i}", "method": "POST", "url": "/v1/responses",
          "body": {"model": "llama3-8b", "input": f"question {i}", "max_output_tokens": 5 + i}} for i in range(3)]
fr = client.files.create(file=("responses.jsonl", jsonl(rreqs)), purpose="batch")
br = wait(client.batches.create(input_file_id=fr.id, endpoint="/v1/responses", completion_window="24h").id)
assert br.status == "completed" and br.request_counts.completed == 3 and br.request_counts.failed == 0, br
metered += 3
for o in (json.loads(l) for l in client.files.content(br.output_file_id).text.splitlines()):
    i = int(o["custom_id"].split("-")[1])
    r = o["response"]["body"]
    assert o["response"]["status_code"] == 200 and o["error"] is None, o
    assert r["object"] == "response" and r["status"] in ("completed", "incomplete"), r
    text = "".join(c["text"] for m in r["output"] if m["type"] == "message" for c in m["content"])
    assert text and 0 < r["usage"]["output_tokens"] <= 5 + i, r

# Malformed lines: the batch fails validation, every problem named by its line.
bad = [reqs[0], "not json", {**reqs[1], "url": "/v1/embeddings"}, {**reqs[2], "custom_id": "req-0"}]
raw = io.BytesIO(("\n".join(x if isinstance(x, str) else json.dumps(x) for x in bad) + "\n").encode())
f2 = client.files.create(file=("bad.jsonl", raw), purpose="batch")
b2 = client.batches.create(input_file_id=f2.id, endpoint="/v1/chat/completions", completion_window="24h")
assert b2.status == "failed", b2
lines = sorted(e.line for e in b2.errors.data)
assert lines == [2, 3, 4], b2.errors
errs = [json.loads(l) for l in client.files.content(b2.error_file_id).text.splitlines()]
assert [e["line"] for e in errs] == [2, 3, 4] and errs[0]["error"]["code"] == "invalid_json", errs

# A model the tenant may not use: refused when the batch is created.
f3 = client.files.create(file=("gated.jsonl", jsonl([{**reqs[0], "body": {**body(0), "model": "gated"}}])),
                         purpose="batch")
try:
    client.batches.create(input_file_id=f3.id, endpoint="/v1/chat/completions", completion_window="24h")
    raise AssertionError("a batch for a model the tenant may not use was accepted")
except openai.PermissionDeniedError as e:
    assert e.status_code == 403, e
# Bad parameters are 400s in OpenAI's shape.
for kwargs in ({"endpoint": "/v1/images", "completion_window": "24h"},
               {"endpoint": "/v1/chat/completions", "completion_window": "1h"}):
    try:
        client.batches.create(input_file_id=f.id, **kwargs)
        raise AssertionError(f"accepted {kwargs}")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
try:
    client.files.create(file=("x.jsonl", jsonl(reqs[:1])), purpose="fine-tune")
    raise AssertionError("purpose fine-tune accepted")
except openai.BadRequestError:
    pass

# The Files API: list, retrieve, delete (then it is gone).
ids = {x.id for x in client.files.list().data}
assert {f.id, f2.id, f3.id, b.output_file_id, b2.error_file_id} <= ids, ids
assert client.files.retrieve(f3.id).id == f3.id
assert client.files.delete(f3.id).deleted
try:
    client.files.retrieve(f3.id)
    raise AssertionError("a deleted file is still there")
except openai.NotFoundError:
    pass
print(f"METERED={metered}")
