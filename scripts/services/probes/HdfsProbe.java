// Readiness probe for the HDFS NameNode + DataNode started by scripts/services.sh:
// writes a small file, reads it back, compares, deletes it. Exit 0 only when all succeed.
// Usage: java -cp CONF:LIB/*:PROBES HdfsProbe hdfs://HOST:PORT
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

public final class HdfsProbe {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: HdfsProbe hdfs://host:port");
            System.exit(2);
        }
        Configuration conf = new Configuration();
        conf.setInt("ipc.client.connect.max.retries", 1);
        byte[] payload = ("ecom-ready " + System.nanoTime()).getBytes(StandardCharsets.UTF_8);
        Path path = new Path("/.ecom-ready/probe-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        try (FileSystem fs = FileSystem.newInstance(URI.create(args[0]), conf)) {
            try (FSDataOutputStream out = fs.create(path, true)) {
                out.write(payload);
            }
            byte[] back;
            try (FSDataInputStream in = fs.open(path)) {
                back = in.readAllBytes();
            }
            fs.delete(path, false);
            if (!Arrays.equals(payload, back)) {
                System.err.println("HDFS probe: read back " + back.length + " bytes that differ from what was written");
                System.exit(1);
            }
        }
        System.out.println("HDFS probe: wrote, read back and deleted " + path);
    }
}
