import assert from "node:assert/strict";
import { copyDns, DnsSchema } from "./dns.ts";

Deno.test("copyDns() copies the four fields and drops the rest", () => {
  const dns = {
    nameservers: ["10.0.0.10"],
    domain: "cluster.local",
    search: ["svc"],
    options: ["ndots:5"],
    extra: true,
  };
  const out = copyDns(dns);
  assert.deepEqual(out, {
    nameservers: ["10.0.0.10"],
    domain: "cluster.local",
    search: ["svc"],
    options: ["ndots:5"],
  });
  assert.notEqual(out.nameservers, dns.nameservers);
  assert.deepEqual(copyDns({}), {});
});

Deno.test("DnsSchema keeps unknown keys and checks the known ones", () => {
  const r = DnsSchema.safeParse({ nameservers: ["1.1.1.1"], x: 1 });
  assert.ok(r.success);
  assert.deepEqual(r.data, { nameservers: ["1.1.1.1"], x: 1 });
  assert.ok(!DnsSchema.safeParse({ search: "svc" }).success);
  assert.ok(!DnsSchema.safeParse({ domain: 5 }).success);
});
