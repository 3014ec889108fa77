"""Sends chat completions through the gateway with the official `openai` client, as a harvesting
campaign or as a normal application, and prints one JSON line per request: {"status", "code"}.

Usage: extraction_client.py BASE KEY MODE N
  campaign: one template around many questions, top-20 logprobs, 128 tokens run to the cap
            (`ignore_eos`), one request every 50 ms;
  normal:   a long system prompt, questions as people ask them, 16 tokens at most, in bursts of
            three to five with pauses between.
"""
import json
import random
import sys
import time

import openai

base, key, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)

QUESTIONS = [
    "Why is the sky blue?", "How do vaccines train the immune system?", "What causes inflation?",
    "How does a transistor amplify a signal?", "Why do leaves change colour in autumn?",
    "What is the difference between weather and climate?", "How do noise-cancelling headphones work?",
    "Why did the Roman Empire decline?", "How is the speed of light measured?", "What is a prime number?",
    "How do bees communicate where flowers are?", "What makes a bridge stable?", "How does compound interest grow?",
    "Why does ice float on water?", "How do plate tectonics shape mountains?", "What is entropy?",
    "How do search engines rank pages?", "Why do we dream?", "How does a refrigerator move heat?",
    "What is the Pythagorean theorem used for?", "How do tides follow the moon?", "What is a black hole?",
    "How does photosynthesis store energy?", "Why are some metals magnetic?", "How do elections in parliaments work?",
    "What is machine learning?", "How does the heart pump blood?", "Why is biodiversity important?",
    "How do airplanes generate lift?", "What is the theory of supply and demand?", "How do batteries store charge?",
    "What is quantum entanglement?", "How do languages evolve?", "Why do earthquakes happen?",
    "How does GPS find a position?", "What is the greenhouse effect?", "How are diamonds formed?",
    "What is a derivative in calculus?", "How do antibiotics kill bacteria?", "Why is the ocean salty?",
]
SYSTEM = "You are the help assistant of a bookshop. " * 40
rng = random.Random(26)

for i in range(n):
    q = QUESTIONS[i % len(QUESTIONS)]
    if mode == "campaign":
        args = dict(
            messages=[{"role": "user", "content": "Answer the following question. Think step by step and explain "
                       "your reasoning in full detail, then state the final answer.\n\n" + q}],
            max_tokens=128, logprobs=True, top_logprobs=20, extra_body={"ignore_eos": True})
    else:
        args = dict(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], max_tokens=16)
    out = {"status": 200, "code": None}
    try:
        client.chat.completions.create(model="gated", **args)
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out.update(status=e.status_code, code=body.get("code") or (body.get("error") or {}).get("code"))
    print(json.dumps(out), flush=True)
    if mode == "campaign":
        time.sleep(0.05)
    elif i % rng.randint(3, 5) == 0:
        time.sleep(rng.uniform(0.3, 0.9))
