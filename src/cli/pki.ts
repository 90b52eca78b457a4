// `vmigrate pki`: a private CA and the certificates agents, managers and readers present, made
// with openssl. The role an agent grants is the certificate's OU (default patterns, src/api/roles.ts).
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { defaultRoleOu, ROLES, type Role } from '../api/roles.js';
import { ensureCa, issueCert } from '../common/pki.js';

function sanOf(host: string): string {
  return /^[0-9.]+$|:/.test(host) ? `IP:${host}` : `DNS:${host}`;
}

export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description('make the CA and the certificates of agents, managers and readers (openssl)');

  pki
    .command('ca')
    .description('create the CA (DIR/ca.pem, DIR/ca-key.pem) unless it exists')
    .requiredOption('--dir <dir>', 'where the CA lives; keep ca-key.pem off the hypervisors')
    .option('--org <name>', 'subject O of the CA and of what it issues')
    .action(async (o: { dir: string; org?: string }) => {
      const ca = await ensureCa(resolve(o.dir), o.org);
      console.log(`CA certificate ${ca.cert}\nCA key         ${ca.key}`);
    });

  pki
    .command('issue')
    .description('issue a certificate signed by the CA in --dir: DIR/NAME.pem and DIR/NAME-key.pem')
    .requiredOption('--dir <dir>', 'the CA directory (from `vmigrate pki ca`)')
    .requiredOption('--name <name>', 'subject CN, and the file name')
    .addOption(new Option('--role <role>', 'what the agents let it do').choices([...ROLES]).makeOptionMandatory())
    .option('--host <name|ip...>', 'for an agent (role peer): host names and addresses its API is reached at')
    .option('--org <name>', 'subject O')
    .action(async (o: { dir: string; name: string; role: Role; host?: string[]; org?: string }) => {
      const dir = resolve(o.dir);
      if (o.role === 'peer' && !o.host?.length) throw new InvalidArgumentError('--host is needed for an agent certificate (role peer): the names clients use to reach it');
      const ca = await ensureCa(dir, o.org);
      const out = await issueCert(ca, { cert: join(dir, `${o.name}.pem`), key: join(dir, `${o.name}-key.pem`) }, {
        cn: o.name,
        ou: defaultRoleOu(o.role),
        ...(o.org ? { org: o.org } : {}),
        // an agent is a server for its API and a client towards its peers
        usage: o.role === 'peer' ? ['serverAuth', 'clientAuth'] : ['clientAuth'],
        ...(o.host?.length ? { san: o.host.map(sanOf) } : {}),
      });
      console.log(`certificate ${out.cert}\nkey         ${out.key}\nrole        ${o.role} (OU=${defaultRoleOu(o.role)})`);
    });
}
