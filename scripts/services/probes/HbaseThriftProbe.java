// Readiness probe for the HBase Thrift 1 server started by scripts/services.sh
// (binary protocol, buffered transport): create table, put, get, drop table.
// Usage: java -cp LIB/*:PROBES HbaseThriftProbe HOST PORT
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.List;

import org.apache.hadoop.hbase.thrift.generated.ColumnDescriptor;
import org.apache.hadoop.hbase.thrift.generated.Hbase;
import org.apache.hadoop.hbase.thrift.generated.Mutation;
import org.apache.hadoop.hbase.thrift.generated.TCell;
import org.apache.hadoop.hbase.thrift.generated.TRowResult;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.transport.TSocket;

public final class HbaseThriftProbe {
    private static ByteBuffer utf8(String s) {
        return ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: HbaseThriftProbe host port");
            System.exit(2);
        }
        String table = "ecom_ready_" + System.currentTimeMillis();
        String value = "v" + System.nanoTime();
        TSocket socket = new TSocket(args[0], Integer.parseInt(args[1]));
        socket.setTimeout(60_000);
        socket.open();
        try {
            Hbase.Client client = new Hbase.Client(new TBinaryProtocol(socket));
            ColumnDescriptor family = new ColumnDescriptor();
            family.setName(utf8("f:"));
            family.setMaxVersions(1);
            client.createTable(utf8(table), List.of(family));
            try {
                Mutation put = new Mutation();
                put.setColumn(utf8("f:q"));
                put.setValue(utf8(value));
                put.setWriteToWAL(true);
                client.mutateRow(utf8(table), utf8("row"), List.of(put), Collections.emptyMap());
                List<TRowResult> rows = client.getRow(utf8(table), utf8("row"), Collections.emptyMap());
                TCell cell = rows.isEmpty() ? null : rows.get(0).getColumns().get(utf8("f:q"));
                String got = cell == null ? null : new String(cell.getValue(), StandardCharsets.UTF_8);
                if (!value.equals(got)) {
                    System.err.println("HBase probe: get returned " + got + ", expected " + value);
                    System.exit(1);
                }
            } finally {
                client.disableTable(utf8(table));
                client.deleteTable(utf8(table));
            }
        } finally {
            socket.close();
        }
        System.out.println("HBase probe: created " + table + ", put/get a cell, dropped it");
    }
}
