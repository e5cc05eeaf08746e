"""A one-column result's values read straight off pymysql's connection buffer.

The extract stage asks the server for one binary line a row (sluice.rowlines), so each row
packet holds a single length-coded string. pymysql reads every packet through four Python
calls and an object (`_read_packet`, `MysqlPacket`, `_read_row_from_packet`, the cursor's
`read_next`): three quarters of the extract's CPU went there. `fetch_lines` parses the row
packets where they already sit in the connection's read buffer (`_rfile.peek`) and consumes
exactly the bytes it parsed, so what it leaves is where pymysql expects it: a cursor closed
before the end, or the next query, goes on through pymysql as before.

It checks what pymysql's `_read_packet` checks (each packet's sequence number; an error
packet raises the server's error, as pymysql does; a closed or silent socket is a lost
connection), and takes a row split over several packets (16 MiB or more, when the
server's max_allowed_packet allows it) whole. It relies on pymysql 1.2's connection
internals (`_rfile`, `_next_seq_id`, `_sock`, `_read_timeout`, `_current_timeout`, `_result`,
`_force_close`) and its unbuffered result (`unbuffered_active`, `connection`,
`_check_packet_is_eof`); tests/integration/test_fetch.py fails first if an upgrade moves
them.
"""

from __future__ import annotations

from pymysql import err
from pymysql.constants import CR
from pymysql.protocol import MysqlPacket

MAX_PACKET = 0xFFFFFF  # a payload this long continues in the next packet
BINARY = 63  # the binary character set's number


def fetch_lines(cursor, max_rows: int) -> list[bytes | None]:
    """Up to `max_rows` values of an unbuffered (SSCursor) result of one binary column, in
    order, as bytes (None for NULL); [] once the result is read to its end."""
    result = cursor._result
    if result is None or not result.unbuffered_active:
        return []
    if result.field_count != 1 or result.fields[0].charsetnr != BINARY:
        raise ValueError("fetch_lines reads results of one binary column only")
    conn = result.connection
    if conn._current_timeout != conn._read_timeout:
        conn._sock.settimeout(conn._read_timeout)
        conn._current_timeout = conn._read_timeout
    rfile = conn._rfile
    out: list[bytes | None] = []
    append = out.append
    while len(out) < max_rows:
        seq = conn._next_seq_id
        data = _peek(conn, rfile)
        end, pos = len(data), 0
        while len(out) < max_rows and end - pos >= 4:
            size = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            body = pos + 4
            if end - body < size or size == MAX_PACKET or data[pos + 3] != seq:
                break  # not all here, or in several packets, or out of order: one at a time
            if not size:
                break  # not a row: one at a time, which says so
            head = data[body]
            if head == 0xFE and size < 9 or head == 0xFF:
                break  # the end, or the server's error: one at a time
            seq = (seq + 1) & 0xFF
            pos = body + size
            if head < 0xFB and head + 1 == size:
                append(data[body + 1 : pos])
            elif head == 0xFB and size == 1:
                append(None)
            else:
                append(_value(data[body:pos]))
        if pos:
            rfile.read(pos)  # consume what was parsed; the rest stays for the next read
            conn._next_seq_id = seq
        elif len(out) < max_rows:
            payload = _read_packet(conn, rfile)
            head = payload[0] if payload else -1
            if head == 0xFE and len(payload) < 9:
                result._check_packet_is_eof(MysqlPacket(payload, conn.encoding))
                result.unbuffered_active = False
                result.connection = None
                break
            if head == 0xFF:
                result.unbuffered_active = False
                MysqlPacket(payload, conn.encoding).raise_for_error()
            append(_value(payload))
    return out


def _value(payload: bytes) -> bytes | None:
    """A row packet's one length-coded string (its length in 1, 3, 4 or 9 bytes; NULL is
    0xFB alone)."""
    if not payload:
        raise err.InternalError("an empty packet where a row of one value was due")
    head = payload[0]
    if head == 0xFB and len(payload) == 1:
        return None
    if head < 0xFB:
        start, size = 1, head
    elif head == 0xFC:
        start, size = 3, int.from_bytes(payload[1:3], "little")
    elif head == 0xFD:
        start, size = 4, int.from_bytes(payload[1:4], "little")
    elif head == 0xFE:
        start, size = 9, int.from_bytes(payload[1:9], "little")
    else:
        raise err.InternalError(f"not a row of one value: first byte {head:#x}")
    if start + size != len(payload):
        raise err.InternalError(
            f"a row of one value holds {len(payload)} bytes, its value's length says {start + size}"
        )
    return payload[start:]


def _peek(conn, rfile) -> bytes:
    """What the connection's read buffer holds, reading from the socket if it is empty."""
    try:
        data = rfile.peek(1)
    except OSError as exc:
        raise _lost(conn, exc) from exc
    except BaseException:  # interrupted mid-read: closed, as pymysql closes it
        _lost(conn)
        raise
    if not data:
        raise _lost(conn)
    return data


def _read_packet(conn, rfile) -> bytes:
    """One whole packet's payload (joined when it spans several), as pymysql reads it."""
    parts = []
    while True:
        header = _read(conn, rfile, 4)
        size = header[0] | header[1] << 8 | header[2] << 16
        if header[3] != conn._next_seq_id:
            if header[3] == 0:  # MariaDB's error packet on shutdown
                raise _lost(conn)
            expected = conn._next_seq_id
            _lost(conn)
            raise err.InternalError(
                f"Packet sequence number wrong - got {header[3]} expected {expected}"
            )
        conn._next_seq_id = (conn._next_seq_id + 1) & 0xFF
        parts.append(_read(conn, rfile, size))
        if size < MAX_PACKET:
            return b"".join(parts)


def _read(conn, rfile, n: int) -> bytes:
    try:
        data = rfile.read(n)
    except OSError as exc:
        raise _lost(conn, exc) from exc
    except BaseException:  # interrupted mid-packet: closed, as pymysql closes it
        _lost(conn)
        raise
    if len(data) < n:
        raise _lost(conn)
    return data


def _lost(conn, cause: Exception | None = None) -> err.OperationalError:
    """Close the connection as pymysql does when it loses one (its result ends with it: a
    cursor closed afterwards has nothing to read) and return the error pymysql raises."""
    if conn._result is not None:
        conn._result.unbuffered_active = False
    conn._force_close()
    detail = f" ({cause})" if cause else ""
    return err.OperationalError(
        CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query{detail}"
    )
