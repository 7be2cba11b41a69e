import assert from "node:assert/strict";
import { AzureHttpError } from "@vnet/azure";
import {
  ArmConflictError,
  ArmOperationError,
  classifyArmError,
} from "./errors.ts";

/** An SDK `RestError` as core-rest-pipeline makes it. */
function restError(
  fields: { statusCode?: number; code?: string; retryAfter?: string },
): Error {
  const headers = new Headers();
  if (fields.retryAfter !== undefined) {
    headers.set("retry-after", fields.retryAfter);
  }
  return Object.assign(new Error("rest"), {
    name: "RestError",
    ...(fields.statusCode === undefined ? {} : {
      statusCode: fields.statusCode,
      response: { headers },
    }),
    ...(fields.code === undefined ? {} : { code: fields.code }),
  });
}

Deno.test("classifyArmError() labels each kind of failure from a fixed set", async (t) => {
  const cases: [string, unknown, ReturnType<typeof classifyArmError>][] = [
    ["429 with Retry-After", restError({ statusCode: 429, retryAfter: "3" }), {
      result: "throttled",
      status: 429,
      retryAfterMs: 3000,
      transient: true,
    }],
    ["503", restError({ statusCode: 503, code: "ServerBusy" }), {
      result: "server_error",
      status: 503,
      code: "ServerBusy",
      transient: true,
    }],
    ["403", restError({ statusCode: 403, code: "AuthorizationFailed" }), {
      result: "client_error",
      status: 403,
      code: "AuthorizationFailed",
      transient: false,
    }],
    ["a stale etag", new ArmConflictError("nic0", { etag: 'W/"1"' }), {
      result: "conflict",
      status: 412,
      transient: true,
    }],
    [
      "a failed operation (SubnetIsFull)",
      new ArmOperationError("nic0", {
        cause: new Error(
          "The long-running operation has failed. SubnetIsFull. Subnet s with address prefix p does not have enough capacity",
        ),
      }),
      { result: "operation_failed", code: "SubnetIsFull", transient: false },
    ],
    ["no answer", restError({ code: "ECONNREFUSED" }), {
      result: "network_error",
      transient: true,
    }],
    ["a fetch failure", new TypeError("fetch failed"), {
      result: "network_error",
      transient: true,
    }],
    [
      "IMDS answering 500",
      new AzureHttpError("IMDS failed", {
        status: 500,
        url: "http://169.254.169.254/metadata/instance",
        transient: true,
      }),
      { result: "imds_error", status: 500, transient: true },
    ],
    [
      "IMDS not answering",
      new AzureHttpError("IMDS failed", {
        status: 0,
        url: "http://169.254.169.254/metadata/instance",
        transient: true,
      }),
      { result: "imds_error", transient: true },
    ],
    [
      "no managed identity token",
      Object.assign(new Error("no token"), {
        name: "CredentialUnavailableError",
      }),
      { result: "auth_error", transient: true },
    ],
    [
      "a token refused with 400",
      Object.assign(new Error("bad identity"), {
        name: "AuthenticationError",
        statusCode: 400,
      }),
      { result: "auth_error", status: 400, transient: false },
    ],
    ["the NIC not found", new Error('Cannot find the NIC of VM "vm0"'), {
      result: "other_error",
      transient: false,
    }],
  ];
  for (const [name, err, want] of cases) {
    await t.step(name, () => assert.deepEqual(classifyArmError(err), want));
  }
});
