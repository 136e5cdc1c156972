"""kubectl port-forward on the virtual node: SPDY/3.1 framing checked against frames of
moby/spdystream (the library kubectl uses), and the port-forward protocol on real sockets."""
import asyncio
import struct
import zlib

import pytest

from operators.providers.local.netns import open_connection
from operators.virtualnode.kubelet import spdy
from operators.virtualnode.kubelet.portforward import forward_streams
from operators.virtualnode.kubelet.spdy_streams import SpdyConnection

# spdystream's Framer writing what kubectl sends for one forwarded connection: SYN_STREAM
# error (1) and data (3) with Go's canonical header names, FIN on the error stream, data,
# a PING, a SYN_REPLY, RST_STREAM(CANCEL) and GOAWAY.
GO_FRAMES = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45a024cc"
    "6461c0c0c0c0590489c44c50e2663400000000ffff800300010000001800000003000000000000c2aa15540a2512d209"
    "000000ffff00000001010000000000000300000012474554202f20485454502f312e300d0a0d0a800300060000000400"
    "000001800300020000000e000000026260606000000000ffff8003000300000008000000030000000580030007000000"
    "080000000300000000"
)


def test_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


@pytest.mark.parametrize("step", [len(GO_FRAMES), 1, 7])
def test_reads_spdystream_frames_however_split(step):
    reader, frames = spdy.FrameReader(), []
    for i in range(0, len(GO_FRAMES), step):
        frames += reader.feed(GO_FRAMES[i:i + step])
    headers = {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}
    assert frames == [
        spdy.SynStream(1, headers),
        spdy.SynStream(3, {**headers, "streamtype": ["data"]}),
        spdy.Data(1, b"", fin=True),
        spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n"),
        spdy.Ping(1),
        spdy.Ignored(spdy.SYN_REPLY),
        spdy.RstStream(3, spdy.CANCEL),
        spdy.GoAway(3),
    ]


def test_written_frames_as_spdystream_reads_them():
    w = spdy.FrameWriter()
    reply = w.syn_reply(1)
    version, type_, flags_len, sid = struct.unpack_from(">HHII", reply)
    assert (version, type_, flags_len, sid) == (0x8003, spdy.SYN_REPLY, len(reply) - 8, 1)
    # zlib stream with the SPDY dictionary's id, as Go's zlib.NewReaderDict requires.
    assert reply[12] == 0x78 and reply[13] & 0x20 and reply[14:18] == bytes.fromhex("e3c6a7c2")
    second = w.syn_reply(3, {"x": ["a", "b"]})
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)  # one context for the connection
    assert inflate.decompress(reply[12:]) == struct.pack(">I", 0)
    assert spdy.decode_headers(inflate.decompress(second[12:])) == {"x": ["a", "b"]}
    assert w.data(3, b"hi", fin=True) == struct.pack(">II", 3, 0x01000002) + b"hi"
    assert w.data(3, fin=True) == struct.pack(">II", 3, 0x01000000)
    assert w.ping(5) == struct.pack(">HHII", 0x8003, spdy.PING, 4, 5)


class Client:
    """kubectl's side of a port-forward connection, over in-memory queues."""

    def __init__(self, dial):
        self.w, self.r = spdy.FrameWriter(), spdy.FrameReader()
        self.frames: asyncio.Queue = asyncio.Queue()
        self.control = []

        async def send(data):
            for f in self.r.feed(data):
                self.frames.put_nowait(f)
        self.conn = SpdyConnection(send)
        self.task = asyncio.ensure_future(forward_streams(self.conn, dial, "web"))

    async def open(self, request, port, error_id, data_id):
        for kind, sid in (("error", error_id), ("data", data_id)):
            await self.conn.feed(self.w.syn_stream(sid, {"streamtype": [kind], "port": [str(port)],
                                                            "requestid": [str(request)]}))

    async def until_closed(self, *streams) -> dict[int, bytes]:
        got, open_ = {}, set(streams)
        while open_:
            f = await asyncio.wait_for(self.frames.get(), 5)
            if isinstance(f, spdy.Data):
                got[f.stream_id] = got.get(f.stream_id, b"") + f.data
                if f.fin:
                    open_.discard(f.stream_id)
            else:
                self.control.append(f)
        return got


async def test_forwards_a_connection_to_the_pods_localhost():
    async def upper(reader, writer):
        writer.write((await reader.read()).upper())  # until the client's FIN
        writer.close()
    server = await asyncio.start_server(upper, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = Client(lambda p: open_connection("/proc/self/ns/net", p))
    await c.open(0, port, 1, 3)
    await c.conn.feed(c.w.data(1, fin=True) + c.w.data(3, b"hello ") + c.w.data(3, b"pod", fin=True))
    await c.conn.feed(c.w.ping(7))
    got = await c.until_closed(1, 3)
    assert got == {3: b"HELLO POD", 1: b""}
    assert spdy.Ping(7) in c.control  # answered as spdystream answers pings
    assert c.control.count(spdy.Ignored(spdy.SYN_REPLY)) == 2  # each stream accepted
    server.close()
    c.conn.end()
    await c.task


async def test_a_refused_port_is_reported_on_the_error_stream():
    c = Client(lambda p: open_connection("/proc/self/ns/net", p))
    await c.open(5, 1, 5, 7)
    got = await c.until_closed(5, 7)
    assert got[7] == b""
    assert got[5].decode().startswith("error forwarding port 1 to pod web: failed to connect to localhost:1 "
                                      "inside the pod: IPv4: Connection refused")
