// obj_check.mjs: the official NATS JavaScript object store client (@nats-io/obj) as a second,
// independent reader and writer of the buckets marmot's NatsObjectStore writes. Used by
// nats_object_store_test.cpp to prove marmot speaks the protocol the official clients speak.
//
//   node obj_check.mjs NODE_MODULES_DIR NATS_URL BUCKET list          -> "<name> <size>" per object
//   node obj_check.mjs NODE_MODULES_DIR NATS_URL BUCKET sha256 NAME   -> hex SHA-256 of the object
//   node obj_check.mjs NODE_MODULES_DIR NATS_URL BUCKET put NAME FILE -> stores FILE as NAME
//   node obj_check.mjs NODE_MODULES_DIR NATS_URL BUCKET text NAME     -> the object, as text
//
// The client checks the object's digest itself while downloading; a mismatch exits non-zero.
// Exit status 0 on success, 1 with the error on stderr otherwise.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createRequire } from "node:module";
import { Readable } from "node:stream";

const [modulesDir, url, bucket, command, name, file] = process.argv.slice(2);
// The npm packages live outside this directory tree (tests/npm/node_modules): resolve from there.
const require = createRequire(modulesDir.replace(/\/?$/, "/"));
const { connect } = require("@nats-io/transport-node");
const { Objm } = require("@nats-io/obj");

const nc = await connect({ servers: url });
try {
  // Reading opens the bucket marmot made (failing if its stream is missing); writing may create it.
  const objm = new Objm(nc);
  const store = command === "put" ? await objm.create(bucket) : await objm.open(bucket);
  if (command === "list") {
    for (const info of await store.list()) console.log(`${info.name} ${info.size}`);
  } else if (command === "sha256") {
    const result = await store.get(name);
    if (result === null) throw new Error(`no object ${name}`);
    const hash = createHash("sha256");
    for await (const chunk of result.data) hash.update(chunk);
    const error = await result.error;
    if (error) throw error;
    console.log(hash.digest("hex"));
  } else if (command === "text") {
    const text = await store.getBlob(name);
    if (text === null) throw new Error(`no object ${name}`);
    process.stdout.write(new TextDecoder().decode(text));
  } else if (command === "put") {
    const data = Readable.toWeb(createReadStream(file));
    await store.put({ name }, data);
  } else {
    throw new Error(`unknown command ${command}`);
  }
} catch (err) {
  console.error(`obj_check: ${err.message ?? err}`);
  process.exitCode = 1;
} finally {
  await nc.close();
}
