"""JSON extraction: the model fills a record from free text, constrained by a
JSON Schema so the output always parses. Mirrors examples/json-extract
(Rust) call for call."""

from arbor import Gen, JsonError, State, to_json, trim

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "maxLength": 40},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


def run(text: str) -> str:
    s = State()
    s.system("Extract the person described in the text as JSON.")
    s.user(trim(text))
    # A dict schema is sent as sorted compact JSON: the bytes Rust sends.
    s.assistant_generate("person", Gen(max_tokens=96, json_schema=SCHEMA))
    person = to_person(s.json("person"))
    return to_json(person)


def to_person(v) -> dict:
    """The fields of the Rust `Person {name: String, age: u32, city: String}`,
    checked as serde would: other fields are ignored, the three must be
    there with those types."""
    if not isinstance(v, dict):
        raise JsonError("expected struct Person")
    for field in ("name", "age", "city"):
        if field not in v:
            raise JsonError(f"missing field `{field}`")
    name, age, city = v["name"], v["age"], v["city"]
    if not isinstance(name, str) or not isinstance(city, str):
        raise JsonError("expected a string")
    # bool is an int in Python, and serde refuses floats like 30.0 for u32.
    if type(age) is not int or not 0 <= age <= 0xFFFF_FFFF:
        raise JsonError("expected u32")
    return {"name": name, "age": age, "city": city}
