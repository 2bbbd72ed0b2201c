// The tutorial's app: answers every request with its name.
const http = require("http");

const name = process.env.APP_NAME || "app";
const port = Number(process.env.PORT || 80);

http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`${name}\n`);
  })
  .listen(port, () => console.log(`${name} listening on ${port}`));
