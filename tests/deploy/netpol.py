"""A small evaluator of Kubernetes NetworkPolicies over built manifests: may a pod (or an
address outside the cluster) open a connection to another on a port? Implements the
documented semantics: a pod selected by a policy of a type is isolated for that direction
and allowed only what some rule of such a policy allows; a connection needs the source's
egress and the destination's ingress; a peer with only podSelector means the policy's
namespace; namespaceSelector and podSelector in one peer must both match; ipBlock matches
addresses (pod addresses too); no ``ports`` means every port; named ports resolve against
the destination pod's container ports; protocol defaults to TCP."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod (namespace, labels, container ports by name, address) or an outside address."""

    name: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    ip: str = "10.0.0.1"

    @property
    def in_cluster(self) -> bool:
        return self.namespace is not None


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against labels; {} selects all."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Cluster:
    """The NetworkPolicies and Namespaces of a build, and the pods to reason about."""

    def __init__(self, docs: list[Doc]) -> None:
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        self.ns_labels: dict[str, dict[str, str]] = {}
        for d in docs:
            if d["kind"] == "Namespace":
                name = d["metadata"]["name"]
                self.ns_labels[name] = dict(d["metadata"].get("labels") or {})

    def _ns(self, name: str) -> dict[str, str]:
        return {**self.ns_labels.get(name, {}), "kubernetes.io/metadata.name": name}

    def _peer(self, peer: Doc, policy_ns: str, other: Pod) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            addr = ipaddress.ip_address(other.ip)
            if addr not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(addr in ipaddress.ip_network(x) for x in block.get("except", []))
        if not other.in_cluster:
            return False
        assert other.namespace is not None
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self._ns(other.namespace)):
                return False
        elif other.namespace != policy_ns:
            return False
        return selects(peer.get("podSelector") or {}, other.labels)

    @staticmethod
    def _port(rule: Doc, dst: Pod, port: int, protocol: str) -> bool:
        entries = rule.get("ports")
        if not entries:
            return True
        for p in entries:
            if p.get("protocol", "TCP") != protocol:
                continue
            if "port" not in p:
                return True
            want = p["port"]
            if isinstance(want, str):
                if dst.ports.get(want) == port:
                    return True
                continue
            if want <= port <= p.get("endPort", want):
                return True
        return False

    def _direction(self, pod: Pod, kind: str, other: Pod, dst: Pod, port: int, proto: str) -> bool:
        if not pod.in_cluster:
            return True  # the outside is not ours to police
        mine = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not mine:
            return True  # not isolated in this direction
        key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for p in mine:
            for rule in p["spec"].get(key) or []:
                peers = rule.get(peers_key)
                ns = p["metadata"]["namespace"]
                peer_ok = not peers or any(self._peer(x, ns, other) for x in peers)
                if peer_ok and self._port(rule, dst, port, proto):
                    return True
        return False

    def allowed(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        """May ``src`` connect to ``dst`` on ``port``?"""
        out = self._direction(src, "Egress", dst, dst, port, protocol)
        return out and self._direction(dst, "Ingress", src, dst, port, protocol)
