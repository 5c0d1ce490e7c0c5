"""Stand-in for tinyllm.core.message: a message model shaped like the
seed's (trace_id, source_node, payload.content) with pydantic's
model_dump_json / model_validate_json."""
import json


class MessagePayload:
    def __init__(self, content, **extra):
        self.content = content
        self.extra = extra

    def model_dump(self):
        return {"content": self.content, **self.extra}

    def __eq__(self, other):
        return isinstance(other, MessagePayload) and self.model_dump() == other.model_dump()


class Message:
    def __init__(self, trace_id, source_node, payload):
        self.trace_id = trace_id
        self.source_node = source_node
        self.payload = payload

    def model_dump_json(self):
        return json.dumps({"trace_id": self.trace_id, "source_node": self.source_node,
                           "payload": self.payload.model_dump()})

    @classmethod
    def model_validate_json(cls, data):
        d = json.loads(data)
        return cls(trace_id=d["trace_id"], source_node=d["source_node"], payload=MessagePayload(**d["payload"]))

    def __eq__(self, other):
        return isinstance(other, Message) and (self.trace_id, self.source_node, self.payload) == (
            other.trace_id, other.source_node, other.payload)
