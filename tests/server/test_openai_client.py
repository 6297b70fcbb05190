"""The official `openai` client, unmodified, against `arbor serve`."""

import json

import openai
import pytest

from conftest import MODEL


def client(server, key=None):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key or server.keys[0], max_retries=0)


def test_models_and_auth(server):
    assert [m.id for m in client(server).models.list()] == [MODEL]
    with pytest.raises(openai.AuthenticationError):
        client(server, "arb_not_a_key").models.list()


def test_completions(server):
    r = client(server).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert len(r.choices) == 1 and isinstance(r.choices[0].text, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens >= 1
    again = client(server).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert again.choices[0].text == r.choices[0].text


def test_chat_completions_n_and_seed(server):
    c = client(server)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    a = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, n=2, seed=7, temperature=1.0)
    b = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, n=2, seed=7, temperature=1.0)
    assert [ch.index for ch in a.choices] == [0, 1]
    assert [ch.message.content for ch in a.choices] == [ch.message.content for ch in b.choices]
    assert a.choices[0].message.role == "assistant"


def test_streaming_matches_non_streaming(server):
    c = client(server, server.keys[1])
    msgs = [{"role": "user", "content": "Tell me a story."}]
    whole = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12, temperature=0)
    stream = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens
    pieces = [ch.text for chunk in client(server).completions.create(
        model=MODEL, prompt="abc", max_tokens=6, temperature=0, stream=True) for ch in chunk.choices]
    assert "".join(pieces) == client(server).completions.create(
        model=MODEL, prompt="abc", max_tokens=6, temperature=0).choices[0].text


def test_errors_surface_as_openai_errors(server):
    c = client(server)
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="gpt-4o", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model=MODEL, prompt="x", max_tokens=2, extra_body={"no_such_field": 1})


def test_json_schema_response_parses(server):
    schema = {"type": "object", "properties": {"answer": {"type": "boolean"}}, "required": ["answer"],
              "additionalProperties": False}
    r = client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "2+2?"}], max_tokens=64, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}})
    value = json.loads(r.choices[0].message.content)
    assert isinstance(value["answer"], bool)
    assert r.choices[0].finish_reason == "stop"


def test_invalid_schema_is_a_400_streamed_or_not(server):
    # Issue 12: streamed, it was a 200 and then an error inside the stream,
    # which the client only met while iterating.
    bad = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "no-such-type"}}}
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            client(server).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=4, stream=stream,
                response_format=bad)
        assert e.value.status_code == 400
        assert e.value.code == "invalid_schema", e.value.body


def test_logprobs_parse_in_the_clients_types(server):
    c = client(server)
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6,
                                  temperature=0, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob
    assert b"".join(bytes(t.bytes) for t in content).decode("utf-8", "replace") == r.choices[0].message.content
    legacy = c.completions.create(model=MODEL, prompt="abc", max_tokens=4, temperature=0, logprobs=1)
    lp = legacy.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == legacy.usage.completion_tokens
