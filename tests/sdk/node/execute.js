// Executes an Airplane task with the unmodified `airplane` npm package and prints the run as JSON.
// Usage: node execute.js SLUG '{"param": "value"}'
// Reads AIRPLANE_API_HOST and AIRPLANE_API_KEY (and AIRPLANE_ENV_SLUG) like any user script would.
const airplane = require("airplane");

const [slug, params] = process.argv.slice(2);
airplane
  .execute(slug, JSON.parse(params || "{}"))
  .then((run) => {
    console.log(JSON.stringify({ id: run.id, taskID: run.taskID, status: run.status, output: run.output }));
  })
  .catch((err) => {
    console.log(JSON.stringify({ error: err.message, status: err.run ? err.run.status : null }));
    process.exitCode = 3;
  });
