"""Reads a published Cairn dataset with pyarrow.flight alone (no Cairn code) and
compares it with an Arrow IPC file.

usage: read_with_pyarrow_flight.py SCHEDULER_ADDR DATASET EXPECTED.arrow
"""
import sys

import pyarrow as pa
import pyarrow.flight as flight


def main() -> int:
    scheduler, name, expected_path = sys.argv[1:4]
    client = flight.connect(f"grpc://{scheduler}")
    listed = [info.descriptor.path[0].decode() for info in client.list_flights()]
    if name not in listed:
        print(f"FAIL: {name} not in ListFlights: {listed}")
        return 1
    info = client.get_flight_info(flight.FlightDescriptor.for_path(name))
    tables = []
    for endpoint in info.endpoints:
        if not endpoint.locations:
            print(f"FAIL: chunk {endpoint.ticket.ticket!r} has no location")
            return 1
        worker = flight.connect(endpoint.locations[0])
        tables.append(worker.do_get(endpoint.ticket).read_all())
    table = pa.concat_tables(tables) if tables else info.schema.empty_table()
    expected = pa.ipc.open_file(expected_path).read_all()
    if not table.equals(expected):
        print(f"FAIL: read {table.num_rows} rows, expected {expected.num_rows}; schemas {table.schema} / {expected.schema}")
        return 1
    if info.total_records != expected.num_rows:
        print(f"FAIL: total_records {info.total_records}, expected {expected.num_rows}")
        return 1
    print(f"OK {table.num_rows} rows in {len(info.endpoints)} endpoints via {scheduler}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
