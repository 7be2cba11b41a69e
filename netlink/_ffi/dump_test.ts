import assert from "node:assert/strict";
import {
  DUMP_ATTEMPTS,
  dumpObjects,
  retryDump,
  RTM_GETADDR,
  RTM_GETLINK,
} from "./dump.ts";
import { AF_UNSPEC, libnl, NETLINK_ROUTE, type NlSock } from "./libnl.ts";
import { libnlRoute } from "./libnl_route.ts";

// retryDump() needs no kernel; the dumps read this namespace's links and
// addresses (no root, no change).

const what = { op: "list", object: "links" };

Deno.test("retryDump() sends a dump again only a bounded number of times on NLE_DUMP_INTR", async (t) => {
  await t.step("gives up after DUMP_ATTEMPTS", () => {
    let calls = 0;
    assert.throws(
      () =>
        retryDump(() => {
          calls++;
          return -33;
        }, what),
      {
        name: "NetlinkError",
        nlCode: 33,
        message: new RegExp(
          `^Cannot list "links": .*\\(${DUMP_ATTEMPTS} attempts\\)$`,
        ),
      },
    );
    assert.equal(calls, DUMP_ATTEMPTS);
  });
  await t.step("returns once an attempt is not interrupted", () => {
    const codes = [-33, -33, 0];
    let calls = 0;
    retryDump(() => codes[calls++] ?? -1, what);
    assert.equal(calls, 3);
  });
  await t.step("stops retrying on another error, mapped", () => {
    const codes = [-33, -33, -6];
    let calls = 0;
    assert.throws(
      () => retryDump(() => codes[calls++] ?? 0, what),
      { name: "AlreadyExists", message: /Cannot list "links": Object exists/ },
    );
    assert.equal(calls, 3);
  });
});

function openSocket(): NlSock {
  const f = libnl.need("nl_socket_alloc", "nl_connect");
  const sock = f.nl_socket_alloc();
  assert.ok(sock !== null);
  assert.equal(f.nl_connect(sock, NETLINK_ROUTE), 0);
  return sock;
}

Deno.test("dumpObjects() reads every object and leaves the socket clean after a failing reader", () => {
  const sock = openSocket();
  try {
    const r = libnlRoute.need("rtnl_link_get_ifindex");
    const dumpLinks = (
      read: (obj: Deno.PointerObject, out: number[]) => void,
    ) =>
      dumpObjects<number>(sock, {
        type: RTM_GETLINK,
        family: AF_UNSPEC,
        what,
        read,
      });
    const all = dumpLinks((link, out) =>
      out.push(r.rtnl_link_get_ifindex(link))
    );
    assert.ok(all.includes(1), "lo (ifindex 1) is listed");
    let calls = 0;
    assert.throws(
      () =>
        dumpLinks(() => {
          calls++;
          throw new RangeError("boom");
        }),
      { name: "RangeError", message: "boom" },
    );
    assert.equal(calls, 1, "no object is read after a failure");
    // The failed dump was read to its end: the next one gets its own answer.
    assert.deepEqual(
      dumpLinks((link, out) => out.push(r.rtnl_link_get_ifindex(link))),
      all,
    );
  } finally {
    libnl.need("nl_socket_free").nl_socket_free(sock);
  }
});

Deno.test("dumpObjects() with a link reads that link's objects only", () => {
  const sock = openSocket();
  try {
    const r = libnlRoute.need("rtnl_addr_get_ifindex");
    const indexes = (link?: number) =>
      dumpObjects<number>(sock, {
        type: RTM_GETADDR,
        family: AF_UNSPEC,
        what: { op: "list", object: "addresses" },
        ...(link === undefined ? {} : { link }),
        read: (a, out) => out.push(r.rtnl_addr_get_ifindex(a)),
      });
    const lo = indexes(1);
    assert.ok(lo.length > 0, "lo has 127.0.0.1");
    assert.deepEqual(new Set(lo), new Set([1]));
    assert.deepEqual(indexes().filter((i) => i === 1), lo);
  } finally {
    libnl.need("nl_socket_free").nl_socket_free(sock);
  }
});
