"""subPathExpr as the kubelet expands it: $(VAR) from the container's environment, every
variable defined and non-empty, the result neither absolute nor with '..' (its messages),
then an ordinary subPath; tenant values stay data."""
import pytest

from operators.models.podspec import Container
from operators.providers.errors import ProviderError
from operators.providers.local.spec import env_args
from operators.providers.local.subpathexpr import env_values, expand, expand_subpath, expanded
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("tenant-ns", "web-0", "u-1")


def test_expansion_follows_the_forked_go_expansion():
    env = {"A": "x", "B": "y"}.get
    assert expand("$(A)/$(B)", lambda k: env(k) or "") == "x/y"
    assert expand("$$(A)", lambda k: "no") == "$(A)"  # escaped
    assert expand("a$(A", lambda k: "no") == "a$(A" and expand("$x$", lambda k: "no") == "$x$"


@pytest.mark.parametrize("expr,env,result", [
    ("$(POD_NAME)", {"POD_NAME": "web-0"}, "web-0"),
    ("logs/$(POD_NAME)/$(NS)", {"POD_NAME": "web-0", "NS": "default"}, "logs/web-0/default"),
    ("fixed", {}, "fixed"),
    ("$(A)", {"A": "--privileged,rw"}, "--privileged,rw"),  # data: a directory name, nothing more
])
def test_a_subpathexpr_expands_from_the_environment(expr, env, result):
    assert expand_subpath(expr, env) == result


@pytest.mark.parametrize("expr,env,message", [
    ("$(POD_NAME)", {}, "missing value for POD_NAME"),
    ("$(B)/$(A)", {"A": ""}, "missing value for A, B"),
    ("$(A)", {"A": "/etc"}, "error SubPath `/etc` must not be an absolute path"),
    ("x/$(A)", {"A": "../../etc"}, "unable to provision SubPath `x/../../etc`: must not contain '..'"),
    ("$(A)", {"A": ".."}, "unable to provision SubPath `..`: must not contain '..'"),
])
def test_an_expansion_the_kubelet_refuses_is_refused_with_its_words(expr, env, message):
    with pytest.raises(ValueError) as exc:
        expand_subpath(expr, env)
    assert str(exc.value) == message


def test_the_container_gets_the_expanded_subpath_from_its_final_environment():
    c = Container.model_validate({"name": "app", "image": "i", "env": [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "DIR", "value": "a=b"}],
        "volumeMounts": [{"name": "d", "mountPath": "/d", "subPathExpr": "$(DIR)/$(POD_NAME)"},
                         {"name": "d", "mountPath": "/e", "subPath": "plain"}]})
    env = env_values(env_args(c, REF))
    assert env == {"POD_NAME": "web-0", "DIR": "a=b"}
    out = expanded(c, env)
    assert [(m.subPath, m.subPathExpr) for m in out.volumeMounts] == [("a=b/web-0", None), ("plain", None)]
    assert c.volumeMounts[0].subPathExpr == "$(DIR)/$(POD_NAME)"  # the spec itself is left as it is
    bad = Container.model_validate({"name": "app", "image": "i", "env": [{"name": "DIR", "value": "/etc"}],
                                    "volumeMounts": [{"name": "d", "mountPath": "/d", "subPathExpr": "$(DIR)"}]})
    with pytest.raises(ProviderError) as exc:
        expanded(bad, env_values(env_args(bad, REF)))
    assert exc.value.reason == "CreateContainerConfigError"
    assert str(exc.value) == "error SubPath `/etc` must not be an absolute path"
