"""A Python client generated from proto/ with grpcio-tools, against a running Kelvin.

Usage: client_test.py ADDRESS TOKEN PROTO_DIR

Generates the kelvin.v1 stubs into a temporary directory, creates an organization and a tenant,
lists them back, and checks that server reflection (v1alpha, the version grpcio-reflection
speaks) lists the services. Exits non-zero with a message on any failure.
"""

import importlib
import os
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def generate(proto_dir: str, out_dir: str) -> None:
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = sorted(
        os.path.join("kelvin", "v1", f)
        for f in os.listdir(os.path.join(proto_dir, "kelvin", "v1"))
        if f.endswith(".proto")
    )
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    )
    if code != 0:
        sys.exit(f"protoc failed with {code}")


def main() -> None:
    address, token, proto_dir = sys.argv[1:4]
    out = tempfile.mkdtemp(prefix="kelvin-py-")
    generate(proto_dir, out)
    sys.path.insert(0, out)
    messages = importlib.import_module("kelvin.v1.tenancy_pb2")
    services = importlib.import_module("kelvin.v1.tenancy_pb2_grpc")

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = services.TenantServiceStub(channel)
    auth = (("authorization", f"Bearer {token}"),)

    org_id = "py-" + uuid.uuid4().hex[:8]
    org = stub.CreateOrganization(
        messages.CreateOrganizationRequest(organization_id=org_id, display_name="Python agency"), metadata=auth
    ).organization
    assert org.organization_id == org_id, org
    tenant = stub.CreateTenant(
        messages.CreateTenantRequest(organization_id=org_id, tenant_id=org_id + "-client", labels={"lang": "python"}),
        metadata=auth,
    ).tenant
    assert tenant.state == messages.TENANT_STATE_ACTIVE, tenant

    orgs = stub.ListOrganizations(messages.ListOrganizationsRequest(page_size=1000), metadata=auth).organizations
    assert org_id in [o.organization_id for o in orgs], orgs
    tenants = stub.ListTenants(messages.ListTenantsRequest(organization_id=org_id), metadata=auth).tenants
    assert [t.tenant_id for t in tenants] == [org_id + "-client"], tenants
    assert dict(tenants[0].labels) == {"lang": "python"}

    try:
        stub.GetTenant(messages.GetTenantRequest(tenant_id="does-not-exist"), metadata=auth)
        sys.exit("GetTenant of a missing tenant succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e

    reflection = ProtoReflectionDescriptorDatabase(channel)
    names = set(reflection.get_services())
    for expected in ("kelvin.v1.TenantService", "grpc.health.v1.Health"):
        assert expected in names, names
    described = reflection.FindFileContainingSymbol("kelvin.v1.TenantService")
    assert described.package == "kelvin.v1", described

    print(f"python client ok: organization {org_id}, {len(tenants)} tenant, services {sorted(names)}")


if __name__ == "__main__":
    main()
