#!/usr/bin/perl
# Verify the DKIM signature of the message on standard input with Mail::DKIM (the verifier
# SpamAssassin and amavis use), an implementation independent of dkimpy. The public key record
# is given as the first argument instead of being looked up in DNS. Prints the result
# ("pass", "fail (...)") and exits 0 only on pass.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my $record = shift or die "usage: dkim_verify.pl 'v=DKIM1; k=rsa; p=...' < message\n";
{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        my $rr = Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => $record);
        return ($rr);
    };
}
binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $dkim->PRINT($line);
}
$dkim->CLOSE;
my $result = $dkim->result_detail;
print "$result\n";
exit($dkim->result eq 'pass' ? 0 : 1);
