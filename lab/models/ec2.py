"""moto's EC2, made to answer at the size of the lab's fleets.

EC2 resources read their own tags directly. moto finds one resource's tags by filtering every tag
of the account (DescribeTags with a resource-id filter), so DescribeInstances over N instances costs
N times all the account's tags: about two seconds for the 260 instances of one account-region of the
scale scenario, all of it the simulator's own time. Reading the resource's entry in the same tag
store gives the same tags, in the same order and shape, at once.

DescribeInstances answers are written straight to XML. moto serializes every result the generic
way: for each member of each instance it asks a chain of alias providers which attribute holds the
value, builds nested dicts and hands them to xmltodict: about 0.7 s for those 260 instances, while
the lab answers one request at a time. ``DirectXmlWriter`` follows moto's rules (the same candidate
attributes in the same order, the same response transformers, the same conversions, empty elements
and list items), so its bytes are moto's, but it works out each member's candidate attributes once
per class and where each member's transformer applies once per place, asks each object only for the
names it can hold, and writes the text as it goes: about 0.03 s.
"""

from xml.sax.saxutils import escape

from moto.core.responses import ActionResult
from moto.core.serialize import AttributePickerContext, EC2Serializer, TimestampSerializer, XFormedAttributePicker
from moto.core.utils import MISSING, get_value
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# what moto's serializer answers when no request id is given to it, as for every EC2 answer
REQUEST_ID = "request-id"


def _own_tags(self):
    if not self.id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [{"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in self.ec2_backend.tags.get(self.id, {}).items()]


class DirectXmlWriter:
    """One EC2 operation's results as moto's EC2Serializer writes them with moto's XFormedAttributePicker:
    structures, lists, strings, booleans, integers and timestamps, the only shapes DescribeInstances has."""

    def __init__(self, operation_model, transformers):
        self.operation_model = operation_model
        self.transformers = transformers
        self.picker = XFormedAttributePicker(response_transformers=transformers)
        self.timestamps = TimestampSerializer(EC2Serializer.DEFAULT_TIMESTAMP_FORMAT)
        self.plans = {}  # structure path -> its members: (key, shape, element name, path below, transformer path)
        self.transformer_count = len(transformers)
        self.candidates = {}  # (class, structure name, member) -> (names to try in moto's order, those the class defines)
        self.readable = {}  # (class, structure path, the names an object holds) -> its members to read (_readable)

    def document(self, result):
        shape = self.operation_model.output_shape
        name = f"{self.operation_model.name}Response"
        namespace = self.operation_model.metadata["xmlNamespace"]
        members = self._members(result, shape, f"{self.operation_model.name}.{shape.name}")
        return f'{XML_DECLARATION}<{name} xmlns="{namespace}">{members}<requestId>{REQUEST_ID}</requestId></{name}>'

    def _members(self, value, shape, path):
        elements = []
        for names, member_shape, name, path_below, transformer_path in self._readable(value, shape, path):
            member_value = _first_value(value, names)
            if transformer_path is not None:
                member_value = self.transformers[transformer_path](member_value)
            if member_value is not None:
                element = self._element(member_value, member_shape, name, path_below)
                if element is not None:
                    elements.append(element)
        return "".join(elements)

    def _plan(self, shape, path):
        """A structure's members where it stands in the result, with the path of what is below each (its
        members', or its items' for a list) and the response transformer whose path its own path ends with."""
        if len(self.transformers) != self.transformer_count:  # moto's responses add transformers as they run
            self.plans, self.readable, self.transformer_count = {}, {}, len(self.transformers)
        plan = self.plans.get(path)
        if plan is None:
            plan = []
            for key, member_shape in shape.members.items():
                member_path = f"{path}.{key}"
                path_below = f"{member_path}.{member_shape.member.name}" if member_shape.type_name == "list" else member_path
                transformer_path = next((ending for ending in self.transformers if member_path.endswith(ending)), None)
                plan.append((key, member_shape, member_shape.serialization.get("name", key), path_below, transformer_path))
            self.plans[path] = plan
        return plan

    def _element(self, value, shape, name, path_below):
        """The element for one value, or None where moto writes nothing (a structure that is None)."""
        kind = shape.type_name
        if kind == "string":
            return _tagged(name, escape(str(value)))
        if kind == "structure":
            return None if value is None else _tagged(name, self._members(value, shape, path_below))
        if kind == "list":
            return _tagged(name, self._items(value, shape.member, path_below))
        if kind == "boolean":
            return _tagged(name, "true" if value is True or str(value).lower() == "true" else "false")
        if kind in ("integer", "long"):
            return _tagged(name, str(int(value)))
        if kind == "timestamp":
            written = {}
            self.timestamps.serialize(written, value, shape, "value")
            return _tagged(name, written["value"])
        raise TypeError(f"{self.operation_model.name}: no direct XML for {kind} shapes ({shape.name})")

    def _items(self, values, shape, path):
        """A list's items; moto leaves out those that are None or structures without members."""
        name = shape.serialization.get("name", "member")
        dropped = f"<{name}/>" if shape.type_name == "structure" else None
        elements = [self._element(value, shape, name, path) for value in values]
        return "".join(element for element in elements if element is not None and element != dropped)

    def _readable(self, obj, shape, path):
        """The structure's members (see ``_plan``) that obj may hold or a transformer may give a value, each
        with the names to read from obj in moto's order and their getters (see ``_first_value``).

        moto's XFormedAttributePicker tries several candidate names per member, and most members of an answer
        are not there. A plain dict is asked only for the keys it holds, and an object whose attributes can only
        come from its class or its own __dict__ only for the names its class defines or its __dict__ holds:
        those are the same for all the objects built alike, so what to read is kept per class, per place and
        per the names the object holds."""
        plan = self._plan(shape, path)
        getter = _getter(obj)
        held = None if getter is get_value else tuple(obj) if getter is dict.get else tuple(obj.__dict__)
        readable = self.readable.get((type(obj), path, held))
        if readable is None:
            readable = []
            for key, member_shape, name, path_below, transformer_path in plan:
                candidates, on_class = self._candidates(obj, key, member_shape, shape)
                names = tuple((candidate, get_value if held is None or "." in candidate else getter)
                              for candidate in candidates
                              if held is None or "." in candidate or candidate in held or candidate in on_class)
                if names or transformer_path is not None:
                    readable.append((names, member_shape, name, path_below, transformer_path))
            self.readable[(type(obj), path, held)] = readable
        return readable

    def _candidates(self, obj, key, shape, parent):
        """The names moto's XFormedAttributePicker tries for the member, in its order and each once, and
        those of them that obj's class defines."""
        found = self.candidates.get((type(obj), parent.name, key))
        if found is None:
            shape.parent = parent  # as moto's serializer sets it, for the aliases that look at the parent
            context = AttributePickerContext(obj=obj, key=key, shape=shape, operation_model=self.operation_model,
                                             service_model=self.operation_model.service_model)
            candidates = tuple(dict.fromkeys(self.picker.get_possible_keys(context)))
            on_class = {name for name in candidates if any(name in vars(klass) for klass in type(obj).__mro__)}
            found = self.candidates[(type(obj), parent.name, key)] = (candidates, on_class)
        return found


def _getter(obj):
    """How moto's get_value reads a name without dots from obj, when it can be said from obj's type: dict.get
    for a plain dict, getattr for an object without item access whose attributes come from its class or its
    own __dict__ only; else get_value itself (a dotted name, a path, is always read with get_value)."""
    cls = type(obj)
    if cls is dict:
        return dict.get
    if (not hasattr(obj, "__getitem__") and hasattr(obj, "__dict__") and not hasattr(cls, "__getattr__")
            and cls.__getattribute__ is object.__getattribute__):
        return getattr
    return get_value


def _first_value(obj, names):
    """The value of the first name obj has, as moto's get_value finds it, or None."""
    for name, getter in names:
        value = getter(obj, name, MISSING)
        if value is not MISSING:
            return value
    return None


def _tagged(name, content):
    return f"<{name}>{content}</{name}>" if content else f"<{name}/>"


class DirectXmlResult(ActionResult):
    """A result that moto's response answers through the lab's DirectXmlWriter."""

    writers = {}  # operation name -> its writer, which keeps what it learnt about moto's classes

    def execute_result(self, context):
        operation = context.operation_model
        writer = self.writers.get(operation.name)
        if writer is None:
            writer = self.writers[operation.name] = DirectXmlWriter(operation, context.response.RESPONSE_KEY_PATH_TO_TRANSFORMER)
        return 200, {"Content-Type": "text/xml"}, writer.document(self.result)


def _answered_directly(respond):
    """moto's response method, with its result written by DirectXmlWriter."""

    def respond_directly(self):
        return DirectXmlResult(respond(self).result)

    return respond_directly


TaggedEC2Resource.get_tags = _own_tags
InstanceResponse.describe_instances = _answered_directly(InstanceResponse.describe_instances)
