// JdbcClient.java - a real JDBC client for the integration tests (Debian's PgJDBC,
// libpostgresql-jdbc-java, and MariaDB Connector/J, libmariadb-java; the URL picks the driver),
// run from source: java -cp postgresql.jar:mariadb-java-client.jar JdbcClient.java URL SQL
// [KEY=VALUE...]. Connects with the URL and the properties, runs SQL, prints the first column of
// each row; on an error prints "ERROR: <message>" to stderr and exits 1.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class JdbcClient {
    public static void main(String[] args) {
        Properties props = new Properties();
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            props.setProperty(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        try (Connection c = DriverManager.getConnection(args[0], props);
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(args[1])) {
            while (rs.next()) {
                System.out.println(rs.getString(1));
            }
        } catch (SQLException e) {
            System.err.println("ERROR: " + e.getMessage());
            System.exit(1);
        }
    }
}
