"""The baseline of the load benchmark: a bare Flask app answering "hello"."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"


@app.get("/login")
def login() -> str:  # the benchmark waits for every server on /login
    return "ok"
