// Readiness probe for a listener of the secured Kafka broker started by scripts/services.sh:
// produces one record with the client settings of a properties file (security protocol, TLS
// trust, SASL), then reads it back from the partition and offset the broker acknowledged.
// Exit 0 only when the record read back is the one written. One JVM for both directions.
// Usage: java -cp LIB/*:PROBES KafkaProbe HOST:PORT CLIENT-PROPERTIES TOPIC
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class KafkaProbe {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: KafkaProbe host:port client.properties topic");
            System.exit(2);
        }
        Properties common = new Properties();
        try (InputStream in = new FileInputStream(args[1])) {
            common.load(in);
        }
        common.put("bootstrap.servers", args[0]);
        String topic = args[2];
        byte[] payload = ("ready-" + System.nanoTime()).getBytes(StandardCharsets.UTF_8);

        Properties p = new Properties();
        p.putAll(common);
        p.put("acks", "all");
        p.put("delivery.timeout.ms", "20000");
        p.put("request.timeout.ms", "10000");
        RecordMetadata written;
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            written = producer.send(new ProducerRecord<>(topic, payload)).get();
        }

        Properties c = new Properties();
        c.putAll(common);
        c.put("enable.auto.commit", "false");
        TopicPartition tp = new TopicPartition(topic, written.partition());
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, written.offset());
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    if (r.offset() == written.offset()) {
                        if (!Arrays.equals(r.value(), payload)) {
                            System.err.println("Kafka probe: offset " + r.offset() + " holds another record");
                            System.exit(1);
                        }
                        System.out.println("Kafka probe: wrote and read back " + tp + "@" + r.offset());
                        return;
                    }
                }
            }
        }
        System.err.println("Kafka probe: the record written to " + tp + "@" + written.offset() + " was not read back within 20 s");
        System.exit(1);
    }
}
