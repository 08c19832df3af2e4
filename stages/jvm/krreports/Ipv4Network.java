package krreports;

import org.apache.spark.sql.api.java.UDF2;

/**
 * The network of a dotted-quad IPv4 address ("192.0.2.77", 24 -> "192.0.2.0/24"),
 * or null when the text is not one: exactly four decimal octets 0-255, no
 * leading zeros, nothing else but one final line terminator, which the
 * "$" of transforms.protect.IPV4_PATTERN lets by too. The prefix is a
 * multiple of 8 between 8 and 24.
 *
 * One pass over the characters; Spark's rlike decodes each value to a Java
 * string and runs a backtracking matcher, about ten times the cost.
 */
public final class Ipv4Network implements UDF2<String, Integer, String> {
  @Override
  public String call(String ip, Integer prefix) {
    if (ip == null || prefix == null) {
      return null;
    }
    int keptOctets = prefix / 8;
    int length = withoutFinalLineTerminator(ip);
    int octets = 0;
    int digits = 0;
    int value = 0;
    int cut = -1;
    for (int i = 0; i <= length; i++) {
      char c = i < length ? ip.charAt(i) : '.';
      if (c >= '0' && c <= '9') {
        if (digits == 1 && value == 0) {
          return null; // a leading zero
        }
        value = value * 10 + (c - '0');
        digits++;
        if (value > 255) {
          return null;
        }
      } else if (c == '.' && digits > 0) {
        octets++;
        if (octets == keptOctets) {
          cut = i;
        }
        digits = 0;
        value = 0;
      } else {
        return null;
      }
    }
    if (octets != 4) {
      return null;
    }
    StringBuilder network = new StringBuilder(19).append(ip, 0, cut);
    for (int i = keptOctets; i < 4; i++) {
      network.append(".0");
    }
    return network.append('/').append(prefix).toString();
  }

  /** The length before a final "\n", "\r\n", "\r", U+0085, U+2028 or U+2029 (java.util.regex's "$"). */
  private static int withoutFinalLineTerminator(String text) {
    int length = text.length();
    if (length == 0) {
      return 0;
    }
    char last = text.charAt(length - 1);
    if (last == '\n') {
      return length > 1 && text.charAt(length - 2) == '\r' ? length - 2 : length - 1;
    }
    boolean terminator = last == '\r' || last == '\u0085' || last == '\u2028' || last == '\u2029';
    return terminator ? length - 1 : length;
  }
}
