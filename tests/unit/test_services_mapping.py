"""Tenant Services -> ServiceLBs, EXTERNAL-IPs and zone records (pure mapping)."""
from operators.virtualnode.mapping.services import (ADDRESS_TYPE_ANNOTATION, build_servicelbs, ingress, records,
                                            servicelb_name, target_port)


def service(name="web", ns="default", type_="ClusterIP", ports=None, annotations=None, **spec):
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "annotations": annotations or {}},
            "spec": {"type": type_, "clusterIP": spec.pop("clusterIP", "10.96.0.10"),
                     "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                     **spec}}


def slice_(ips, ready=True, ports=None, hostname=None):
    return {"addressType": "IPv4", "ports": ports or [],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "hostname": hostname,
                           "targetRef": {"kind": "Pod", "name": f"p-{ip}"}} for ip in ips]}


def build(svc, slices):
    return build_servicelbs(svc, slices, cluster="c", cluster_uid="u1", namespace="tenant-c")


def test_cluster_ip_service_gets_one_intranet_lb_with_ready_backends():
    lbs = build(service(), [slice_(["10.0.0.3", "10.0.0.2"]), slice_(["10.0.0.9"], ready=False)])
    assert [lb["metadata"]["name"] for lb in lbs] == ["default.web"]
    spec = lbs[0]["spec"]
    assert spec["addressType"] == "intranet" and spec["vpcID"] == "u1"
    assert spec["listeners"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert [b["ip"] for b in spec["backends"]] == ["10.0.0.2", "10.0.0.3"]
    assert spec["backends"][0]["targetRef"] == "default/p-10.0.0.2"


def test_load_balancer_service_adds_an_internet_lb_unless_the_ack_annotation_says_intranet():
    names = [lb["metadata"]["name"] for lb in build(service(type_="LoadBalancer"), [])]
    assert names == ["default.web", "default.web.internet"]
    intranet = service(type_="LoadBalancer", annotations={ADDRESS_TYPE_ANNOTATION: "intranet"})
    assert [lb["metadata"]["name"] for lb in build(intranet, [])] == ["default.web"]


def test_headless_external_name_and_portless_services_get_no_lb():
    assert build(service(clusterIP="None"), [slice_(["10.0.0.2"])]) == []
    assert build(service(type_="ExternalName", externalName="example.org"), []) == []
    assert build(service(ports=[]), []) == []
    assert build(service("kubernetes", ports=[{"port": 443, "targetPort": 6443}]), [slice_(["10.0.0.2"])]) == []


def test_named_target_port_comes_from_the_endpoint_slice():
    port = {"name": "http", "port": 80, "targetPort": "web"}
    assert target_port(port, []) is None
    assert target_port(port, [slice_([], ports=[{"name": "http", "port": 8081}])]) == 8081
    # Until an endpoint resolves the name there is no listener, hence no LB yet.
    assert build(service(ports=[port]), []) == []


def test_sctp_ports_are_not_load_balanced():
    svc = service(ports=[{"port": 5, "protocol": "SCTP"}, {"port": 53, "protocol": "UDP", "targetPort": 53}])
    assert build(svc, [])[0]["spec"]["listeners"] == [{"protocol": "UDP", "port": 53, "targetPort": 53}]


def test_ingress_comes_from_the_ready_lb_of_the_asked_type():
    svc = service(type_="LoadBalancer")
    lbs = {"default.web": {"status": {"phase": "Ready", "address": "10.112.1.1"}},
           "default.web.internet": {"status": {"phase": "Provisioning"}}}
    assert ingress(svc, lbs) == []
    lbs["default.web.internet"]["status"] = {"phase": "Ready", "address": "127.70.0.1"}
    assert ingress(svc, lbs) == [{"ip": "127.70.0.1", "ipMode": "VIP"}]
    assert ingress(service(), lbs) == []


def test_records_for_every_kind_of_service():
    svcs = [service("web", ports=[{"name": "http", "port": 80}]), service("db", clusterIP="None"),
            service("ext", type_="ExternalName", externalName="example.org"), service("pending")]
    slices = {("default", "db"): [slice_(["10.0.0.5", "10.0.0.4"], hostname=None), slice_(["10.0.0.6"], ready=False)]}
    lbs = {servicelb_name("default", "web", False): {"status": {"phase": "Ready", "address": "10.112.1.1"}}}
    out = {(r["rr"], r["type"]): r["values"] for r in records(svcs, lambda ns, n: slices.get((ns, n), []), lbs)}
    assert out == {
        ("web.default.svc", "A"): ["10.112.1.1"],
        ("_http._tcp.web.default.svc", "SRV"): ["0 100 80 web.default.svc.cluster.local"],
        ("db.default.svc", "A"): ["10.0.0.4", "10.0.0.5"],
        ("ext.default.svc", "CNAME"): ["example.org"],
    }  # "pending" has no address yet, so no record


def test_long_names_stay_valid_and_distinct():
    a = servicelb_name("n" * 63, "s" * 63, False)
    b = servicelb_name("n" * 63, "s" * 63, True)
    assert a != b and len(b) <= 253


def test_client_ip_session_affinity_reaches_every_lb_of_the_service():
    from operators.models.servicelb import ServiceLBSpec
    plain = build(service(), [slice_(["10.0.0.2"])])
    assert "sessionAffinityTimeoutSeconds" not in plain[0]["spec"]
    sticky = build(service(type_="LoadBalancer", sessionAffinity="ClientIP"), [slice_(["10.0.0.2"])])
    assert [lb["spec"]["sessionAffinityTimeoutSeconds"] for lb in sticky] == [10800, 10800]  # the API's default
    timed = build(service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10}}),
                  [slice_(["10.0.0.2"])])
    assert timed[0]["spec"]["sessionAffinityTimeoutSeconds"] == 10
    ServiceLBSpec.model_validate(timed[0]["spec"])


def test_slices_that_list_different_ports_serve_only_those_ports():
    """Upstream conformance: 'multiple ports specified in multiple EndpointSlices' and
    'multiple endpoint IPs specified in multiple EndpointSlices'."""
    from operators.servicelb.status import lb_spec
    ports = [{"name": "port80", "port": 80, "targetPort": 80, "protocol": "TCP"},
             {"name": "port81", "port": 81, "targetPort": 81, "protocol": "TCP"}]
    # one pod, two slices: port80 -> 8090 and port81 -> 9090
    one = build(service(ports=ports), [slice_(["10.0.0.2"], ports=[{"name": "port80", "port": 8090}]),
                                       slice_(["10.0.0.2"], ports=[{"name": "port81", "port": 9090}])])[0]["spec"]
    assert one["listeners"] == [{"protocol": "TCP", "port": 80, "targetPort": 8090, "name": "port80"},
                                {"protocol": "TCP", "port": 81, "targetPort": 9090, "name": "port81"}]
    assert "ports" not in one["backends"][0]  # every listener on its own targetPort: the short form
    # two pods, one per slice, both on 8090
    two = build(service(ports=ports), [slice_(["10.0.0.2"], ports=[{"name": "port80", "port": 8090}]),
                                       slice_(["10.0.0.3"], ports=[{"name": "port81", "port": 8090}])])[0]["spec"]
    assert two["backends"] == [
        {"ip": "10.0.0.2", "ready": True, "targetRef": "default/p-10.0.0.2",
         "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8090}]},
        {"ip": "10.0.0.3", "ready": True, "targetRef": "default/p-10.0.0.3",
         "ports": [{"protocol": "TCP", "port": 81, "targetPort": 8090}]}]
    lb = lb_spec("uid", two)
    (l80, l81) = lb.listeners
    assert lb.targets(l80, lb.backends) == [("10.0.0.2", 8090)]
    assert lb.targets(l81, lb.backends) == [("10.0.0.3", 8090)]


def test_one_named_target_port_with_different_numbers_per_slice():
    port = {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}
    spec = build(service(ports=[port]), [slice_(["10.0.0.2"], ports=[{"name": "http", "port": 8080}]),
                                         slice_(["10.0.0.3"], ports=[{"name": "http", "port": 9090}])])[0]["spec"]
    from operators.servicelb.status import lb_spec
    lb = lb_spec("uid", spec)
    assert sorted(lb.targets(lb.listeners[0], lb.backends)) == [("10.0.0.2", 8080), ("10.0.0.3", 9090)]
